import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { QueryFailedError, Repository } from 'typeorm';
import { hashPassword, verifyAgainstDecoy, verifyPassword } from './password-hashing.js';
import { User } from './user.entity.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Accounts of the demo: sign-up, credential checks, password changes. */
@Injectable()
export class UsersService {
  constructor(@InjectRepository(User) private readonly users: Repository<User>) {}

  /** What `SessionModule`'s `resolveUser` returns: the user, or null when the account is gone. */
  async findById(id: string): Promise<User | null> {
    // Not a UUID cannot be one of ours; asking the uuid column would be a query error (a 503), not a 401.
    if (!UUID_PATTERN.test(id)) return null;
    return this.users.findOneBy({ id });
  }

  /** Creates the account, or returns null when the username is taken (in any letter case). */
  async register(username: string, password: string): Promise<User | null> {
    const user = this.users.create({
      id: randomUUID(),
      username,
      created: new Date(),
      ...(await hashPassword(password)),
    });
    try {
      await this.users.insert(user);
      return user;
    } catch (error) {
      // The unique index on lower(username) decides, so two sign-ups racing for a name cannot both win.
      if (error instanceof QueryFailedError && (error.driverError as { code?: string })?.code === '23505') return null;
      throw error;
    }
  }

  /** The user these credentials open, or null; unknown names take as long as wrong passwords. */
  async verifyCredentials(username: string, password: string): Promise<User | null> {
    const user = await this.users
      .createQueryBuilder('account')
      .where('lower(account.username) = lower(:username)', { username })
      .getOne();
    if (!user) return verifyAgainstDecoy(password).then(() => null);
    return (await verifyPassword(password, user)) ? user : null;
  }

  /** Deletes the account (its sessions are the caller's to delete first). */
  async delete(user: User): Promise<void> {
    await this.users.delete({ id: user.id });
  }

  /** Stores a new hash with a new salt. */
  async changePassword(user: User, newPassword: string): Promise<void> {
    await this.users.update({ id: user.id }, await hashPassword(newPassword));
  }
}
