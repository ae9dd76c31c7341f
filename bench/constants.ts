/** Cookie name of app 4: express-session's default. */
export const EXPRESS_SESSION_COOKIE = 'connect.sid';

/** The secret app 4 signs its cookies with; the bench signs the seeded sids with it too. */
export const EXPRESS_SESSION_SECRET = 'nestjs-typeorm-session bench secret';
