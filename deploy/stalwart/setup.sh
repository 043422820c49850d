#!/bin/sh
# Applies relay.sh's settings to a Stalwart v0.16+ server through its JMAP management API (see README.md).
set -eu

: "${STALWART_URL:?set STALWART_URL, e.g. https://mail.example.com}"
: "${STALWART_ADMIN_TOKEN:?set STALWART_ADMIN_TOKEN (an API key with management permissions)}"
: "${SERVICE_DOMAIN:?set SERVICE_DOMAIN, the domain relay creates mailboxes on}"
: "${ACME_CONTACT:?set ACME_CONTACT, an email address for Let's Encrypt}"
: "${RELAY_URL:?set RELAY_URL, where Stalwart reaches relay (https://relay.example.com)}"

call() {
  curl --fail-with-body --silent --show-error -X POST "$STALWART_URL/api" \
    -H "Authorization: Bearer $STALWART_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' \
    -d "$1"
  echo
}

# One request: the ACME provider, the service domain using it (a creation-id back-reference), the MTA hook.
call "$(cat <<JSON
{
  "using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
  "methodCalls": [
    ["x:AcmeProvider/set", {
      "create": { "acme": {
        "challengeType": "TlsAlpn01",
        "contact": ["$ACME_CONTACT"],
        "renewBefore": "R23",
        "maxRetries": 10
      } }
    }, "c1"],
    ["x:Domain/set", {
      "create": { "domain": {
        "name": "$SERVICE_DOMAIN",
        "aliases": [],
        "isEnabled": true,
        "allowRelaying": false,
        "certificateManagement": { "@type": "Automatic", "acmeProviderId": "#acme", "subjectAlternativeNames": [] },
        "dkimManagement": { "@type": "Manual" },
        "dnsManagement": { "@type": "Manual" },
        "subAddressing": { "@type": "Enabled" },
        "reportAddressUri": "mailto:postmaster"
      } }
    }, "c2"],
    ["x:MtaHook/set", {
      "create": { "relay": {
        "url": "$RELAY_URL/v1/hooks/stalwart",
        "stages": ["rcpt", "data"],
        "enable": { "else": "true" },
        "httpAuth": { "@type": "Bearer", "bearerToken": { "@type": "EnvironmentVariable", "variableName": "RELAY_MTA_HOOK_SECRET" } },
        "httpHeaders": {},
        "timeout": "10s",
        "tempFailOnError": true,
        "allowInvalidCerts": false,
        "maxResponseSize": 1048576
      } }
    }, "c3"]
  ]
}
JSON
)"
