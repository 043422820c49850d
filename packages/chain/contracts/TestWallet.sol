// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title TestWallet: the smallest smart-contract wallet, for tests of contract signers.
/// @notice One owner key. Answers EIP-1271 for digests the owner signed, and lets the owner make calls
/// (e.g. `approve` on the token). Deployed with a normal transaction in tests; not for production.
contract TestWallet {
    bytes4 private constant ERC1271_MAGIC_VALUE = 0x1626ba7e;
    bytes4 private constant ERC1271_INVALID = 0xffffffff;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    receive() external payable {}

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return ERC1271_INVALID;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s) == owner && owner != address(0) ? ERC1271_MAGIC_VALUE : ERC1271_INVALID;
    }

    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory result) {
        require(msg.sender == owner, "TestWallet: caller is not the owner");
        bool ok;
        (ok, result) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }
}
