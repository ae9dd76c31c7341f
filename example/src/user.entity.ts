import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A demo account. The password is never stored, only its scrypt hash and the salt it was made with. */
@Entity({ name: 'users' })
export class User {
  /** A UUID, made by the app: it is also what the `sessions."user"` column holds. */
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  /** As typed at sign-up; unique regardless of case (see the migration's index). */
  @Column({ type: 'varchar', length: 20 })
  username!: string;

  /** Hex of scrypt(password, passwordSalt). */
  @Column({ name: 'password_hash', type: 'varchar', length: 128 })
  passwordHash!: string;

  /** Hex of 16 random bytes, fresh for every user and every password change. */
  @Column({ name: 'password_salt', type: 'varchar', length: 64 })
  passwordSalt!: string;

  @Column({ type: 'timestamptz' })
  created!: Date;
}
