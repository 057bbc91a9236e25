import { join } from 'node:path';
import ts from 'typescript';

/**
 * Type-checks `source` as if it were the file test/<name>.ts (so `./types/...` imports resolve), without
 * writing it: the manifests' checks against kubernetes-types and the types of test/types/. Returns the
 * diagnostics of that file, as text.
 */
export function typeErrorsOf(source: string, name: string): string[] {
  const file = join(process.cwd(), 'test', `${name}.ts`);
  const host = ts.createCompilerHost({});
  const readFile = host.readFile;
  host.readFile = (f) => (f === file ? source : readFile(f));
  const fileExists = host.fileExists;
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram(
    [file],
    {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      types: [],
    },
    host,
  );
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}
