import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** What the build reads: a change to any of these makes dist/ stale. */
const BUILD_INPUTS = ['src', 'tsconfig.build.json', 'tsconfig.json'];

/**
 * Builds the package into dist/ as `npm run build` does (`rm -rf dist && tsc -p
 * tsconfig.build.json`), unless dist/ is newer than every file in src/: specs that run
 * the built package (the demo, separate app processes) build what they need, so a fresh
 * clone's `npm test` works without a build step first. Returns whether it built.
 */
export function buildPackageIfStale(): boolean {
  const built = join(ROOT, 'dist', 'index.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newestMtime(BUILD_INPUTS.map((input) => join(ROOT, input)))) {
    return false;
  }
  rmSync(join(ROOT, 'dist'), { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`building the package (npm run build) failed:\n${stdout ?? ''}${stderr ?? ''}`, { cause: error });
  }
  return true;
}

function newestMtime(paths: string[]): number {
  let newest = 0;
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const stat = statSync(path);
    if (!stat.isDirectory()) newest = Math.max(newest, stat.mtimeMs);
    else newest = Math.max(newest, newestMtime(readdirSync(path).map((name) => join(path, name))));
  }
  return newest;
}
