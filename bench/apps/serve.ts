import 'reflect-metadata';
import type { INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';

/** What the runner can ask an app process to do over the IPC channel. */
export type AppTask = (app: INestApplication) => Promise<unknown>;

/** Messages between the runner and an app process. */
export type ToApp = { type: 'call'; id: number; task: string } | { type: 'stop' };
export type FromApp = { type: 'ready'; port: number } | { type: 'reply'; id: number; value?: unknown; error?: string };

/**
 * Boots `rootModule` on Nest's default (Express) platform on a free 127.0.0.1 port,
 * reports the port to the runner, then answers its calls: `memory` and `cpu` always, plus
 * the app's own `tasks`. Every bench app starts through here, so they all boot
 * the same way and differ only by their module.
 */
export async function serve(
  rootModule: Type,
  options: { configure?: (app: INestApplication) => void; tasks?: Record<string, AppTask> } = {},
): Promise<void> {
  const send = (message: FromApp) => process.send?.(message);
  if (!process.send) throw new Error('Bench apps are started by the bench runner (they need its IPC channel).');
  const app = await NestFactory.create(rootModule, { logger: ['error', 'warn'] });
  options.configure?.(app);
  await app.listen(0, '127.0.0.1');
  const tasks: Record<string, AppTask> = {
    // After a full collection when the runner allowed it (--expose-gc): a reading then
    // shows what the app holds, not where the collector happened to be.
    memory: async () => {
      (globalThis as { gc?: () => void }).gc?.();
      return process.memoryUsage();
    },
    cpu: async () => process.cpuUsage(),
    ...options.tasks,
  };
  process.on('message', (message: ToApp) => {
    if (message.type === 'stop') {
      void app.close().finally(() => process.exit(0));
      return;
    }
    const task = tasks[message.task];
    if (!task) {
      send({ type: 'reply', id: message.id, error: `unknown task ${message.task}` });
      return;
    }
    task(app).then(
      (value) => send({ type: 'reply', id: message.id, value }),
      (error: unknown) =>
        send({ type: 'reply', id: message.id, error: String(error instanceof Error ? error.stack : error) }),
    );
  });
  // The runner owns this process: when it goes, so does the app.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port: (app.getHttpServer().address() as AddressInfo).port });
}
