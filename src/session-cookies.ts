import { Injectable } from '@nestjs/common';

/**
 * Login/logout helpers that set and clear the session cookie on Express and Fastify
 * responses. (Being built in issue 3.)
 * @publicApi
 */
@Injectable()
export class SessionCookies {}
