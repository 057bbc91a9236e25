/**
 * The `require('kubepeers/internals')` entry: the same module as the `import` one, on the Node.js versions
 * that can `require()` an ES module (20.19, 22.12 and later); on older ones the error says what to do.
 */
type Internals = typeof import('./internals.js');

let internals: Internals;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- this file is the CommonJS entry
  internals = require('./internals.js') as Internals;
} catch (err) {
  if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
  throw new Error(
    `kubepeers is an ES module, and Node.js ${process.version} cannot require() it (Node.js 20.19, ` +
      `22.12 and later can): use \`await import('kubepeers/internals')\`, or a newer Node.js`,
    { cause: err },
  );
}

export = internals;
