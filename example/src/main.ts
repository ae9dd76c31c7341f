import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';
import { chooseDatabase, describeDatabase } from './database.js';
import { DEFAULT_HOST, DEFAULT_PORT } from './demo.settings.js';

async function bootstrap(): Promise<void> {
  const port = Number(process.env.PORT || DEFAULT_PORT);
  const host = process.env.HOST || DEFAULT_HOST;
  const database = chooseDatabase();
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forDatabase(database));
  // On Ctrl-C / SIGTERM, close the DataSource so PGlite flushes its files and the purge timer stops.
  app.enableShutdownHooks();
  await app.listen(port, host);
  const { port: boundPort } = app.getHttpServer().address() as AddressInfo; // PORT=0 picks a free port
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${boundPort}`;
  const logger = new Logger('Demo');
  logger.log(`Database: ${describeDatabase(database)}`);
  logger.log(`Demo ready: open ${url}`);
}

bootstrap().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
