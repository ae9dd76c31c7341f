import { strict as assert } from 'node:assert';
import { DuplicateSessionError, InvalidSessionError, Session, SessionService } from 'nestjs-typeorm-session';

/**
 * One check per public member of the installed `SessionService`: the type below makes
 * the app fail to compile when the package gains a method this file does not call.
 * Each check uses its own user ids (`tag` keeps two runs on one database apart) and
 * asserts results, not just that nothing threw.
 */
export type SessionServiceChecks = { [Method in keyof SessionService]: () => Promise<void> };

export function sessionServiceChecks(sessions: SessionService, tag: string): SessionServiceChecks {
  const user = (name: string) => `${tag}-${name}`;
  const now = Date.now();
  /** A session that ended a minute ago (create() takes any past `expires` after `created`). */
  const createExpired = async (id: string, userId: string) => {
    await sessions.create({ id, user: userId, created: new Date(now - 120_000), expires: new Date(now - 60_000) });
  };

  return {
    async onApplicationBootstrap() {
      assert.equal(await sessions.onApplicationBootstrap(), undefined, 'the sessions table is there');
    },

    async create() {
      const id = `${tag}-manual-id`;
      const expires = new Date(now + 60_000);
      await sessions.create({ id, user: user('create'), created: new Date(now), expires });
      const stored = await sessions.get(id);
      assert.equal(stored?.user, user('create'));
      assert.equal(stored?.expires.getTime(), expires.getTime(), 'create keeps the given expires');
      await assert.rejects(
        sessions.create({ id, user: user('create'), created: new Date(now), expires }),
        DuplicateSessionError,
      );
      await assert.rejects(
        sessions.create({ id: `${tag}-no-user`, user: '', created: new Date(now), expires }),
        InvalidSessionError,
      );
      assert.equal(await sessions.get(`${tag}-no-user`), null, 'a rejected create writes nothing');
    },

    async createSessionForUser() {
      const cookieValue = await sessions.createSessionForUser(user('cfu'));
      assert.match(cookieValue, /^[\w-]{43}$/, '32 random bytes, base64url');
      assert.equal(await sessions.getUserIdFromSessionId(cookieValue), user('cfu'));
    },

    async issueSession() {
      const { cookieValue, session } = await sessions.issueSession(user('issue'));
      assert.ok(session instanceof Session);
      assert.equal(session.user, user('issue'));
      assert.match(session.id, /^[0-9a-f]{64}$/, 'the stored id is the SHA-256 digest, not the cookie value');
      assert.notEqual(session.id, cookieValue);
      assert.ok(session.expires > session.created);
      assert.equal((await sessions.get(cookieValue))?.id, session.id);
    },

    async get() {
      const cookieValue = await sessions.createSessionForUser(user('get'));
      const live = await sessions.get(cookieValue);
      assert.ok(live instanceof Session);
      assert.equal(live.user, user('get'));
      assert.equal(live.isExpired(), false);
      await createExpired(`${tag}-get-expired`, user('get'));
      assert.equal((await sessions.get(`${tag}-get-expired`))?.isExpired(), true, 'get returns expired rows too');
      assert.equal(await sessions.get(`${tag}-unknown`), null);
    },

    async getByUserId() {
      const older = new Date(now - 2_000);
      const newer = new Date(now - 1_000);
      const expires = new Date(now + 60_000);
      await sessions.create({ id: `${tag}-by-user-1`, user: user('by-user'), created: older, expires });
      await sessions.create({ id: `${tag}-by-user-2`, user: user('by-user'), created: newer, expires });
      const newest = await sessions.getByUserId(user('by-user'));
      assert.equal(newest?.created.getTime(), newer.getTime(), 'the most recently created one');
      assert.equal(await sessions.getByUserId(user('nobody')), null);
    },

    async getUserIdFromSessionId() {
      const cookieValue = await sessions.createSessionForUser(user('uid'));
      assert.equal(await sessions.getUserIdFromSessionId(cookieValue), user('uid'));
      await createExpired(`${tag}-uid-expired`, user('uid'));
      assert.equal(await sessions.getUserIdFromSessionId(`${tag}-uid-expired`), null, 'expired: null');
      assert.equal(await sessions.getUserIdFromSessionId(`${tag}-unknown`), null);
    },

    async deleteSession() {
      const cookieValue = await sessions.createSessionForUser(user('delete'));
      await sessions.deleteSession(cookieValue);
      assert.equal(await sessions.get(cookieValue), null);
      await sessions.deleteSession(cookieValue); // a second time is a no-op
    },

    async deleteSessionsByUserId() {
      await sessions.createSessionForUser(user('everywhere'));
      await sessions.createSessionForUser(user('everywhere'));
      const kept = await sessions.createSessionForUser(user('bystander'));
      assert.equal(await sessions.deleteSessionsByUserId(user('everywhere')), 2);
      assert.deepEqual(await sessions.listByUserId(user('everywhere')), []);
      assert.equal(await sessions.getUserIdFromSessionId(kept), user('bystander'), "another user's session stays");
    },

    async rotate() {
      const old = await sessions.createSessionForUser(user('rotate'));
      const fresh = await sessions.rotate(old);
      assert.ok(fresh && fresh !== old);
      assert.equal(await sessions.getUserIdFromSessionId(old), null, 'the old value stops working');
      assert.equal(await sessions.getUserIdFromSessionId(fresh), user('rotate'));
      assert.equal(await sessions.rotate(old), null, 'rotating a dead value');
    },

    async rotateSession() {
      const { cookieValue: old, session: before } = await sessions.issueSession(user('rotate-session'));
      const rotated = await sessions.rotateSession(old);
      assert.ok(rotated);
      assert.equal(rotated.session.user, user('rotate-session'));
      assert.equal(rotated.session.created.getTime(), before.created.getTime(), 'keeps created');
      assert.equal(rotated.session.expires.getTime(), before.expires.getTime(), 'keeps expires');
      assert.equal(await sessions.getUserIdFromSessionId(rotated.cookieValue), user('rotate-session'));
      assert.equal(await sessions.rotateSession(old), null);
    },

    async reauthenticate() {
      const old = await sessions.createSessionForUser(user('reauth'));
      const fresh = await sessions.reauthenticate(old);
      assert.ok(fresh && fresh !== old);
      assert.equal(await sessions.getUserIdFromSessionId(old), null, 'the old value stops working');
      assert.equal(await sessions.getUserIdFromSessionId(fresh), user('reauth'));
      assert.equal(await sessions.reauthenticate(old), null, 're-authenticating a dead value');
    },

    async reauthenticateSession() {
      const { cookieValue: old, session: before } = await sessions.issueSession(user('reauth-session'));
      assert.equal(before.authenticatedAt.getTime(), before.created.getTime(), 'a login is an authentication');
      const renewed = await sessions.reauthenticateSession(old);
      assert.ok(renewed);
      assert.equal(renewed.session.created.getTime(), before.created.getTime(), 'keeps created');
      assert.equal(renewed.session.expires.getTime(), before.expires.getTime(), 'keeps expires');
      assert.ok(renewed.session.authenticatedAt >= before.authenticatedAt, 'authenticatedAt moves to now()');
      assert.equal(await sessions.reauthenticateSession(old), null);
    },

    async listByUserId() {
      const expires = new Date(now + 60_000);
      await sessions.create({ id: `${tag}-list-1`, user: user('list'), created: new Date(now - 2_000), expires });
      await sessions.create({ id: `${tag}-list-2`, user: user('list'), created: new Date(now - 1_000), expires });
      await createExpired(`${tag}-list-expired`, user('list'));
      const listed = await sessions.listByUserId(user('list'));
      assert.deepEqual(
        listed.map((session) => session.created.getTime()),
        [now - 1_000, now - 2_000],
        'the live ones, newest first',
      );
      assert.ok(listed.every((session) => session instanceof Session && session.user === user('list')));
    },

    async deleteById() {
      const { session } = await sessions.issueSession(user('admin'));
      assert.equal(await sessions.deleteById(session.id), true);
      assert.equal(await sessions.deleteById(session.id), false, 'already gone');
      assert.deepEqual(await sessions.listByUserId(user('admin')), []);
    },

    async deleteUserSession() {
      const cookieValue = await sessions.createSessionForUser(user('device-owner'));
      const [device] = await sessions.listByUserId(user('device-owner'));
      assert.equal(await sessions.deleteUserSession(user('someone-else'), device.id), false, "not someone else's");
      assert.equal(await sessions.getUserIdFromSessionId(cookieValue), user('device-owner'));
      assert.equal(await sessions.deleteUserSession(user('device-owner'), device.id), true);
      assert.equal(await sessions.getUserIdFromSessionId(cookieValue), null);
    },

    async deleteOtherSessions() {
      const current = await sessions.createSessionForUser(user('others'));
      await sessions.createSessionForUser(user('others'));
      await sessions.createSessionForUser(user('others'));
      assert.equal(await sessions.deleteOtherSessions(user('others'), current), 2);
      assert.equal(await sessions.getUserIdFromSessionId(current), user('others'), 'this device stays logged in');
      assert.equal((await sessions.listByUserId(user('others'))).length, 1);
    },

    async validate() {
      const cookieValue = await sessions.createSessionForUser(user('validate'));
      const valid = await sessions.validate(cookieValue);
      assert.ok(valid.valid);
      assert.equal(valid.session.user, user('validate'));
      assert.equal(valid.renewedExpires, null, 'no sliding expiry by default');
      assert.deepEqual(await sessions.validate(`${tag}-unknown`), { valid: false });
      assert.deepEqual(await sessions.validate(undefined), { valid: false });
      await createExpired(`${tag}-validate-expired`, user('validate'));
      assert.deepEqual(await sessions.validate(`${tag}-validate-expired`), { valid: false });
      assert.equal(await sessions.get(`${tag}-validate-expired`), null, 'an expired session is deleted on sight');
    },

    async validateInMemory() {
      // The guard's synchronous path: a value no row can have is answered at once; with the
      // cache off (this app) a live session needs the database, so the answer is "ask validate".
      assert.deepEqual(sessions.validateInMemory('not a cookie value', true), { valid: false });
      const cookieValue = await sessions.createSessionForUser(user('in-memory'));
      assert.equal(sessions.validateInMemory(cookieValue, true), undefined);
    },
  };
}
