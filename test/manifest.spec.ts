import { readdir, readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : [join(dir, entry.name)])),
  );
  return nested.flat().filter((file) => file.endsWith('.ts') && !file.endsWith('.spec.ts'));
}

/** `@scope/name/deep` → `@scope/name`; `name/deep` → `name`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

interface Manifest {
  type: string;
  exports: Record<string, object | string>;
  files: string[];
  engines: { node: string };
  dependencies?: Record<string, string>;
  peerDependencies: Record<string, string>;
}

describe('package.json', () => {
  let manifest: Manifest;

  beforeAll(async () => {
    manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  });

  it('declares every package that src/ imports as a dependency or peer', async () => {
    const declared = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ]);
    const imported = new Set<string>();
    for (const file of await sourceFiles(join(root, 'src'))) {
      const text = await readFile(file, 'utf8');
      for (const [, specifier] of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/g)) {
        if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
        imported.add(packageName(specifier));
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].filter((name) => !declared.has(name))).toEqual([]);
  });

  it('imports @nestjs/typeorm only from its root (deep dist/ imports break under exports maps)', async () => {
    for (const file of await sourceFiles(join(root, 'src'))) {
      expect(await readFile(file, 'utf8')).not.toMatch(/from\s+['"]@nestjs\/[a-z-]+\/(dist|lib)\//);
    }
  });

  it('is an ESM package with an exports map that has types, import and default', () => {
    expect(manifest.type).toBe('module');
    expect(manifest.exports['.']).toEqual({
      types: './dist/index.d.ts',
      import: './dist/index.js',
      default: './dist/index.js',
    });
    expect(Object.keys(manifest.exports['.'])[0]).toBe('types');
    expect(manifest.exports['./package.json']).toBe('./package.json');
    expect(manifest.files).toEqual(['dist']);
    expect(manifest.engines.node).toBe('>=20.19');
  });

  it('keeps the Nest and TypeORM stack as peers covering NestJS 11–12 and TypeORM 0.3–1.x, and jose the one dependency', () => {
    const peers = manifest.peerDependencies;
    for (const name of ['@nestjs/common', '@nestjs/core', '@nestjs/typeorm', '@nestjs/schedule']) {
      expect(peers[name]).toMatch(/\^12/);
      expect(peers[name]).toMatch(/\^(11|6)/);
    }
    expect(peers.typeorm).toMatch(/\^0\.3/);
    expect(peers.typeorm).toMatch(/\^1/);
    for (const name of ['reflect-metadata', 'rxjs']) expect(peers[name]).toBeDefined();
    // One runtime dependency: jose, for the DBSC proofs of `deviceBinding` (no dependencies of its own).
    expect(Object.keys(manifest.dependencies ?? {})).toEqual(['jose']);
    expect(manifest.dependencies!.jose).toMatch(/^\^6\./);
  });
});
