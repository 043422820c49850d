-- One database per service (DESIGN.md: each service owns its data). Runs once, on an empty volume.
CREATE DATABASE wallet;
CREATE DATABASE relay;
CREATE DATABASE spawn;
CREATE DATABASE platform;
