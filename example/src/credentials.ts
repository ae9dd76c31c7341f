/** The sign-up rules, as in the seed's auth: username 5–20 characters, password 8–100. */
export const USERNAME_LENGTH = { min: 5, max: 20 } as const;
export const PASSWORD_LENGTH = { min: 8, max: 100 } as const;

/** One message for a wrong password and an unknown user alike: it must not tell which. */
export const LOGIN_FAILED_MESSAGE = 'Wrong username or password.';

export const USERNAME_TAKEN_MESSAGE = 'That username is taken. Please choose another one.';

/** Characters as PostgreSQL's varchar(n) counts them (code points, not UTF-16 units). */
function characterCount(value: string): number {
  return [...value].length;
}

/** The sign-up form's problems, as messages for the page; empty when it is valid. */
export function usernameProblems(username: string): string[] {
  const length = characterCount(username);
  if (length < USERNAME_LENGTH.min || length > USERNAME_LENGTH.max) {
    return [`Username must be ${USERNAME_LENGTH.min} to ${USERNAME_LENGTH.max} characters long (you typed ${length}).`];
  }
  return [];
}

export function passwordProblems(password: string, label = 'Password'): string[] {
  const length = characterCount(password);
  if (length < PASSWORD_LENGTH.min || length > PASSWORD_LENGTH.max) {
    return [`${label} must be ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} characters long.`];
  }
  return [];
}

/** A form field as a string: absent or repeated fields become '' rather than a crash. */
export function formField(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}
