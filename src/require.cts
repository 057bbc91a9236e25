/**
 * The `require('kubepeers')` entry (the package's `require` export condition). kubepeers is an ES module;
 * Node.js 20.19 and 22.12 and later can `require()` it, and this hands back the same module. On older
 * versions the error says what to do instead.
 */
type Kubepeers = typeof import('./index.js');

let kubepeers: Kubepeers;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- this file is the CommonJS entry
  kubepeers = require('./index.js') as Kubepeers;
} catch (err) {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ERR_REQUIRE_ESM') throw err;
  throw new Error(
    `kubepeers is an ES module, and Node.js ${process.version} cannot require() it (Node.js 20.19, ` +
      `22.12 and later can): use \`await import('kubepeers')\`, or a newer Node.js`,
    { cause: err },
  );
}

export = kubepeers;
