import { fetchUrlTool } from './fetch-url.js';
import { listFilesTool, readFileTool, writeFileTool } from './files.js';
import type { Tool } from './registry.js';
import { shellTool } from './shell.js';

export * from './registry.js';

/** Every tool the runtime ships. A Hand's `tools` list picks from these names. */
export function builtinTools(): Tool[] {
  return [shellTool, readFileTool, writeFileTool, listFilesTool, fetchUrlTool] as Tool[];
}
