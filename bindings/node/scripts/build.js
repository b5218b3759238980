#!/usr/bin/env node
// Builds the native module: `cargo build --release`, then copies the cdylib
// to elect.node beside index.js. Needs only Rust and node; no napi CLI.
// `node scripts/build.js --debug` builds without optimisations.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const debug = process.argv.includes('--debug');
const args = ['build', '--manifest-path', path.join(root, 'Cargo.toml')];
if (!debug) args.push('--release');
execFileSync('cargo', args, { stdio: 'inherit' });

const target = process.env.CARGO_TARGET_DIR
  ? path.resolve(process.env.CARGO_TARGET_DIR)
  : path.join(root, 'target');
const file = { darwin: 'libelect_node.dylib', win32: 'elect_node.dll' }[process.platform] ?? 'libelect_node.so';
const built = path.join(target, debug ? 'debug' : 'release', file);
const dest = path.join(root, 'elect.node');
// Copy to a temporary name and rename, so that a running process that has
// the old module loaded keeps a consistent file.
fs.copyFileSync(built, dest + '.tmp');
fs.renameSync(dest + '.tmp', dest);
console.log(`built ${path.relative(process.cwd(), dest) || dest}`);
