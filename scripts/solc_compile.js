#!/usr/bin/env node
// Standard-JSON in (stdin), standard-JSON out (stdout), through the pinned solcjs.
//
// `solcjs --standard-json` prints diagnostics on stdout before the JSON, so the
// Python driver (scripts/compile_contracts.py) talks to the compiler through
// this wrapper instead. Imports are resolved only from this checkout and its
// node_modules (e.g. "@openzeppelin/contracts/access/AccessControl.sol"); no
// network, no remappings.
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const solc = require(path.join(ROOT, 'node_modules', 'solc'));

function findImports(unitName) {
  const candidates = [
    path.join(ROOT, 'node_modules', unitName),
    path.join(ROOT, unitName),
  ];
  for (const file of candidates) {
    // Refuse to escape the checkout through "../" in an import path.
    if (!file.startsWith(ROOT + path.sep)) continue;
    if (fs.existsSync(file)) {
      return { contents: fs.readFileSync(file, 'utf8') };
    }
  }
  return { error: 'File not found: ' + unitName };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
