#!/usr/bin/env node
// The `kubepeers` executable: runs the CLI and sets the exit code; the process then ends by itself.
import { main } from './cli/main.js';

process.exitCode = await main(process.argv.slice(2), process.env);
