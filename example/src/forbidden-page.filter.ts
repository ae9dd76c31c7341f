import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CrossOriginRequestException, RecentLoginRequiredException } from 'nestjs-typeorm-session';
import { sendHtml } from './auth.controller.js';
import { crossOriginPage } from './pages.js';

/**
 * The guard's two 403s, for a browser: a too-old login goes to the "confirm your
 * password" page; a request another site made gets a page saying it was refused. API
 * clients (anything not preferring HTML) keep the JSON body with its `code`.
 */
@Catch(CrossOriginRequestException, RecentLoginRequiredException)
export class ForbiddenPageFilter implements ExceptionFilter {
  catch(exception: CrossOriginRequestException | RecentLoginRequiredException, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<Request>();
    const response = http.getResponse<Response>();
    if (request.accepts(['json', 'html']) !== 'html') {
      response.status(exception.getStatus()).json(exception.getResponse());
    } else if (exception instanceof RecentLoginRequiredException) {
      response.redirect(303, '/reauthenticate');
    } else {
      const { code } = exception.getResponse() as { code: string };
      sendHtml(response, 403, crossOriginPage({ code, reason: exception.reason }));
    }
  }
}
