import { ArgumentsHost, Catch, ExceptionFilter, UnauthorizedException } from '@nestjs/common';
import type { Request, Response } from 'express';

/**
 * `AuthGuard` answers 401 when there is no valid session. A browser navigating gets
 * sent to the login page instead; API clients (fetch, curl: anything not preferring
 * HTML) keep the plain 401 JSON answer.
 */
@Catch(UnauthorizedException)
export class LoginRedirectFilter implements ExceptionFilter {
  catch(exception: UnauthorizedException, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<Request>();
    const response = http.getResponse<Response>();
    if (request.accepts(['json', 'html']) === 'html') {
      response.redirect(303, '/login');
      return;
    }
    response.status(exception.getStatus()).json(exception.getResponse());
  }
}
