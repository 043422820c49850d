import type { Hex } from 'viem';
import multicall3 from '../artifacts/Multicall3.json' with { type: 'json' };
import testUsdc from '../artifacts/TestUSDC.json' with { type: 'json' };
import testWallet from '../artifacts/TestWallet.json' with { type: 'json' };

export { multicall3Abi, testUsdcAbi, testWalletAbi } from './abi.js';

/** Creation code (for a deploy transaction) and runtime code (for `anvil_setCode`) of a committed contract. */
export interface Bytecode {
  bytecode: Hex;
  deployedBytecode: Hex;
}

const bytecodeOf = (artifact: { bytecode: string; deployedBytecode: string }): Bytecode => ({
  bytecode: artifact.bytecode as Hex,
  deployedBytecode: artifact.deployedBytecode as Hex,
});

export const testUsdcBytecode = bytecodeOf(testUsdc);
export const multicall3Bytecode = bytecodeOf(multicall3);
export const testWalletBytecode = bytecodeOf(testWallet);
