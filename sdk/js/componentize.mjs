// Compiles a staged JavaScript or TypeScript plugin into a component:
// esbuild bundles the plugin, its npm dependencies and the SDK into one ES
// module, and the pinned componentize-js compiles that. `claimsmith build`
// runs it from its JavaScript toolchain folder (where `npm ci` installed
// package-lock.json):
//
//   node componentize.mjs BUILD.json
//
// BUILD.json: { staging, main, world, output, project, nodePaths, sdkModules }.
// `world` is the WIT world to compile for (`resumable-post-login-action` for
// a project whose `claimsmith.world` is `post-login-action`, so that it may
// export `onContinuePostLogin`); `staging` holds `plugin/` (the project's
// files), `sdk/` and `wit/`;
// `project` is the project's own folder, so that errors name the user's
// files; `nodePaths` are where the project's dependencies were installed;
// `sdkModules` maps the modules the SDK stands in for (`auth0`, ...) to its
// files under `sdk/`.
//
// `fetch()` stays enabled: it is the host's wasi:http, under the same
// policy as the contract's `http.fetch`.

import { componentize } from '@bytecodealliance/componentize-js';
import * as esbuild from 'esbuild';
import { readFile, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';

const [buildFile] = process.argv.slice(2);
if (!buildFile) {
  console.error('usage: node componentize.mjs BUILD.json');
  process.exit(2);
}
const build = JSON.parse(await readFile(buildFile, 'utf8'));
const plugin = path.join(build.staging, 'plugin');
const sdk = path.join(build.staging, 'sdk');
const mainFile = path.join(plugin, build.main);

// Each world's SDK module, and its WIT exports, each as [the WIT export, the
// SDK adapter behind it, the plugin export the adapter takes].
const WORLDS = {
  'resumable-post-login-action': {
    module: 'action.js',
    exports: [
      ['onExecutePostLogin', 'postLoginAction', 'onExecutePostLogin'],
      // Optional, as in Auth0: without it the adapter just resumes the chain.
      ['onContinuePostLogin', 'continuePostLogin', 'onContinuePostLogin'],
    ],
  },
  'credentials-exchange': {
    module: 'credentials.js',
    exports: [
      ['onExecuteCredentialsExchange', 'credentialsExchange', 'onExecuteCredentialsExchange'],
    ],
  },
  'profile-fetcher': {
    module: 'fetcher.js',
    exports: [['fetchProfile', 'profileFetcher', 'fetchUserProfile']],
  },
};

/** The user's path for a staged file, so messages point at their sources. */
function userPath(file) {
  const relative = path.relative(plugin, file);
  return relative.startsWith('..') ? file : path.join(build.project, relative);
}

/**
 * An Auth0 connection script is one function expression, stored as a file
 * holding `function (accessToken, ctx, cb) { ... }`: not a module, and not
 * even a valid program when the function is anonymous.
 */
function isConnectionScript(text) {
  const code = text.replace(/^(\s+|\/\/[^\n]*\n?|\/\*[\s\S]*?\*\/)*/, '');
  if (/^function\s*\(/.test(code)) {
    return true;
  }
  const exportsSomething = /\bexport\s|\bexports\.|\bmodule\.exports\b/.test(text);
  return /^function\s+[\w$]+\s*\(/.test(code) && !exportsSomething;
}

const mainText = await readFile(mainFile, 'utf8');
const manifest = JSON.parse(await readFile(path.join(plugin, 'package.json'), 'utf8'));

/** The major version of `auth0` the project lists: its SDK's shape. */
function auth0Major() {
  const listed = manifest.dependencies?.auth0 ?? manifest.devDependencies?.auth0;
  const major = typeof listed === 'string' ? /\d+/.exec(listed) : null;
  return major ? Number(major[0]) : 4;
}
const connectionScript = build.world === 'profile-fetcher' && isConnectionScript(mainText);
const world = WORLDS[build.world];
if (!world) {
  // `claimsmith build` checks the world first: this is a mismatched toolchain.
  console.error(`unknown world \`${build.world}\`: one of ${Object.keys(WORLDS).join(', ')}`);
  process.exit(2);
}

const adapters = world.exports.map(([, adapter]) => adapter).join(', ');
const entry = connectionScript
  ? `import script from './plugin/${build.main}';\n` +
    `import { connectionScript } from './sdk/fetcher.js';\n` +
    `export const ${world.exports[0][0]} = connectionScript(script);\n`
  : `import * as plugin from './plugin/${build.main}';\n` +
    `import { ${adapters} } from './sdk/${world.module}';\n` +
    world.exports
      .map(([witExport, adapter, pluginExport]) =>
        `export const ${witExport} = ${adapter}(plugin.${pluginExport});\n`)
      .join('');

const BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

/** The npm package a file belongs to, from its path under node_modules. */
function packageOf(file) {
  const parts = file.split(path.sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0) {
    return undefined;
  }
  const name = parts[at + 1];
  return name && name.startsWith('@') ? `${name}/${parts[at + 2]}` : name;
}

const sandbox = {
  name: 'claimsmith-sandbox',
  setup(on) {
    // Whatever version a project lists, the SDK's module answers.
    on.onResolve({ filter: /^[\w@/.-]+$/ }, (args) =>
      Object.hasOwn(build.sdkModules, args.path)
        ? { path: path.join(sdk, build.sdkModules[args.path]) }
        : undefined,
    );
    on.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      if (!BUILTINS.has(args.path)) {
        return undefined;
      }
      const owner = packageOf(args.importer);
      const who = owner ? `the package \`${owner}\`` : userPath(args.importer);
      return {
        errors: [
          {
            text: `${who} needs the Node built-in \`${args.path}\`, which a plugin's sandbox does not have (a plugin reaches the network with \`fetch\` only, and has no files or processes)`,
          },
        ],
      };
    });
    on.onLoad({ filter: /.*/ }, async (args) => {
      if (!connectionScript || args.path !== mainFile) {
        return undefined;
      }
      // Kept on the script's first line, so that errors keep its line numbers.
      const prelude =
        "const request = require('request'), jwt = require('jsonwebtoken'); module.exports = (";
      return { contents: `${prelude}${mainText}\n);\n`, loader: 'js' };
    });
  },
};

/** esbuild's messages, each at the user's file and line, each once. */
function located(messages) {
  const lines = messages.map(({ text, location }) => {
    if (!location) {
      return `error: ${text}`;
    }
    const file = userPath(path.resolve(build.staging, location.file));
    return `${file}:${location.line}:${location.column + 1}: error: ${text}\n    ${location.lineText}`;
  });
  return [...new Set(lines)].join('\n');
}

let bundled;
try {
  bundled = await esbuild.build({
    absWorkingDir: build.staging,
    stdin: { contents: entry, resolveDir: build.staging, sourcefile: 'entry.js' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['import', 'require', 'default'],
    resolveExtensions: ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.json'],
    nodePaths: build.nodePaths,
    external: ['claimsmith:*', 'wasi:*'],
    define: {
      global: 'globalThis',
      'process.env.NODE_ENV': '"production"',
      CLAIMSMITH_AUTH0_MAJOR: String(auth0Major()),
    },
    plugins: [sandbox],
    logLevel: 'silent',
  });
} catch (error) {
  console.error(located(error.errors ?? []) || String(error));
  if (connectionScript) {
    console.error(
      `${userPath(mainFile)} is read as an Auth0 connection script: one function, \`function (accessToken, ctx, cb) { ... }\`, and nothing else`,
    );
  }
  process.exit(1);
}
const sourcePath = path.join(build.staging, 'bundle.js');
await writeFile(sourcePath, bundled.outputFiles[0].contents);
const { component } = await componentize({
  sourcePath,
  witPath: path.join(build.staging, 'wit'),
  worldName: build.world,
});
await writeFile(build.output, component);
