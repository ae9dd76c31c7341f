import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  UnauthorizedException,
} from '@nestjs/common';
import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import { EXPRESS_SESSION_SECRET } from '../constants.js';
import { type GuardedRequest, meController } from './me.controller.js';
import { serve } from './serve.js';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

/** App 4's guard: express-session has loaded `req.session`; a session without a user is anonymous. */
@Injectable()
class SessionUserGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<GuardedRequest & { session?: session.SessionData }>();
    const userId = request.session?.userId;
    if (!userId) throw new UnauthorizedException();
    request.user = { id: userId };
    return true;
  }
}

const MeController = meController(SessionUserGuard);

/**
 * App 4: express-session + connect-pg-simple as Nest middleware, the way most Nest
 * apps hold sessions today: `resave: false`, `saveUninitialized: false`, the
 * libraries' defaults otherwise (its own pg.Pool of 10, touch on every request).
 */
@Module({ controllers: [MeController], providers: [SessionUserGuard] })
class ExpressSessionApp implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    const PgStore = connectPgSimple(session);
    consumer
      .apply(
        session({
          store: new PgStore({ conString: process.env.DATABASE_URL }),
          secret: EXPRESS_SESSION_SECRET,
          resave: false,
          saveUninitialized: false,
        }),
      )
      .forRoutes(MeController);
  }
}

await serve(ExpressSessionApp);
