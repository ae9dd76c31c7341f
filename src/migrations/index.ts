import { CreateSessionsTable1770095236000 } from './1770095236000-create-sessions-table.js';
import { AddSessionAuthenticatedAt1770400000000 } from './1770400000000-add-session-authenticated-at.js';
import { AddSessionCacheTrigger1770500000000 } from './1770500000000-add-session-cache-trigger.js';
import { AddSessionDeviceInfo1770600000000 } from './1770600000000-add-session-device-info.js';
import { AddSessionDeviceBinding1770700000000 } from './1770700000000-add-session-device-binding.js';

export {
  AddSessionAuthenticatedAt1770400000000,
  AddSessionCacheTrigger1770500000000,
  AddSessionDeviceBinding1770700000000,
  AddSessionDeviceInfo1770600000000,
  CreateSessionsTable1770095236000,
};

/**
 * Every migration this package ships, in order: spread it into your DataSource's
 * `migrations` (`migrations: [...sessionMigrations, ...yours]`).
 * @publicApi
 */
export const sessionMigrations = [
  CreateSessionsTable1770095236000,
  AddSessionAuthenticatedAt1770400000000,
  AddSessionCacheTrigger1770500000000,
  AddSessionDeviceInfo1770600000000,
  AddSessionDeviceBinding1770700000000,
];
