import { Body, Controller, Get, HttpCode, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { Public, SessionCookies } from 'nestjs-typeorm-session';
import {
  formField,
  LOGIN_FAILED_MESSAGE,
  passwordProblems,
  USERNAME_TAKEN_MESSAGE,
  usernameProblems,
} from './credentials.js';
import { loginPage, noticeText, signupPage } from './pages.js';
import { UsersService } from './users.service.js';

/** Sign-up, log-in and log-out: open to everyone under the global `AuthGuard`. */
@Public()
@Controller()
export class AuthController {
  constructor(
    private readonly users: UsersService,
    private readonly cookies: SessionCookies,
  ) {}

  @Get('login')
  showLogin(@Query('notice') notice: unknown, @Res() response: Response): void {
    sendHtml(response, 200, loginPage({ notice: noticeText(notice) }));
  }

  @Post('login')
  async login(@Body() body: unknown, @Res() response: Response): Promise<void> {
    const username = formField(body, 'username').trim();
    const password = formField(body, 'password');
    // Out-of-range input cannot match an account; checking it first spares a hash of 1 MB of text.
    const plausible = usernameProblems(username).length === 0 && passwordProblems(password).length === 0;
    const user = plausible ? await this.users.verifyCredentials(username, password) : null;
    if (!user) {
      sendHtml(response, 401, loginPage({ username, errors: [LOGIN_FAILED_MESSAGE] }));
      return;
    }
    await this.cookies.login(response, user.id);
    response.redirect(303, '/');
  }

  @Get('signup')
  showSignup(@Res() response: Response): void {
    sendHtml(response, 200, signupPage());
  }

  @Post('signup')
  async signup(@Body() body: unknown, @Res() response: Response): Promise<void> {
    const username = formField(body, 'username').trim();
    const password = formField(body, 'password');
    const errors = [...usernameProblems(username), ...passwordProblems(password)];
    const user = errors.length === 0 ? await this.users.register(username, password) : null;
    if (!user) {
      sendHtml(response, 400, signupPage({ username, errors: errors.length > 0 ? errors : [USERNAME_TAKEN_MESSAGE] }));
      return;
    }
    await this.cookies.login(response, user.id);
    response.redirect(303, '/?notice=signed-up');
  }

  /** Public on purpose: logging out without a (valid) session just clears the cookie. */
  @Post('logout')
  async logout(@Req() request: Request, @Res() response: Response): Promise<void> {
    await this.cookies.logout(request, response);
    response.redirect(303, '/login?notice=logged-out');
  }

  /** Browsers ask for it on every page; without this it would be a 401 under the global guard. */
  @Get('favicon.ico')
  @HttpCode(204)
  favicon(): void {}
}

export function sendHtml(response: Response, status: number, html: string): void {
  response.status(status).type('html').send(html);
}
