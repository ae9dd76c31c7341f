import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';

/**
 * Turns the session cookie into `request.user`. (Being built in issue 3.)
 * @publicApi
 */
@Injectable()
export class AuthGuard implements CanActivate {
  canActivate(_context: ExecutionContext): Promise<boolean> {
    throw new Error('AuthGuard is not implemented yet');
  }
}
