import { Body, Controller, Get, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  CurrentSession,
  CurrentUser,
  RequireRecentLogin,
  Session,
  SessionCookies,
  SessionService,
} from 'nestjs-typeorm-session';
import { sendHtml } from './auth.controller.js';
import { formField, passwordProblems } from './credentials.js';
import { RECENT_LOGIN_MS } from './demo.settings.js';
import { homePage, noticeText, reauthenticatePage } from './pages.js';
import { User } from './user.entity.js';
import { UsersService } from './users.service.js';

/** Everything here sits behind the global `AuthGuard`: `@CurrentUser()` is the `User` row `resolveUser` loaded. */
@Controller()
export class AccountController {
  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionService,
    private readonly cookies: SessionCookies,
  ) {}

  @Get()
  async home(
    @CurrentUser() user: User,
    @CurrentSession() session: Session,
    @Query('notice') notice: unknown,
    @Res() response: Response,
  ): Promise<void> {
    sendHtml(response, 200, await this.renderHome(user, session, { notice: noticeText(notice) }));
  }

  /** The same guard answers JSON clients with 401 instead of a redirect (see LoginRedirectFilter). */
  @Get('api/me')
  me(@CurrentUser() user: User, @CurrentSession() session: Session) {
    return { id: user.id, username: user.username, session: { created: session.created, expires: session.expires } };
  }

  @Post('logout-everywhere')
  async logoutEverywhere(@Req() request: Request, @Res() response: Response): Promise<void> {
    await this.cookies.logoutEverywhere(request, response);
    response.redirect(303, '/login?notice=logged-out-everywhere');
  }

  /** Revokes one of the current user's sessions (by the `Session.id` the table shows). */
  @Post('sessions/:id/revoke')
  async revoke(
    @Param('id') id: string,
    @CurrentUser() user: User,
    @CurrentSession() session: Session,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    if (id === session.id) {
      // Revoking this browser's own session is a log-out: clear the cookie too.
      await this.cookies.logout(request, response);
      response.redirect(303, '/login?notice=logged-out');
      return;
    }
    // Only this user's own sessions: an id from someone else's list deletes nothing.
    const revoked = await this.sessions.deleteUserSession(user.id, id);
    response.redirect(303, revoked ? '/?notice=revoked' : '/');
  }

  @Post('password')
  async changePassword(
    @Body() body: unknown,
    @CurrentUser() user: User,
    @CurrentSession() session: Session,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const currentPassword = formField(body, 'currentPassword');
    const newPassword = formField(body, 'newPassword');
    const errors = passwordProblems(newPassword, 'New password');
    if (errors.length === 0 && !(await this.users.verifyCredentials(user.username, currentPassword))) {
      errors.push('Your current password is not correct.');
    }
    if (errors.length > 0) {
      sendHtml(response, 400, await this.renderHome(user, session, { passwordErrors: errors }));
      return;
    }
    await this.users.changePassword(user, newPassword);
    // A privilege change: a fresh session id, so a cookie value captured earlier stops working.
    const newCookieValue = await this.cookies.rotate(request, response);
    const signOutOthers = formField(body, 'signOutOthers') === 'yes' && newCookieValue !== null;
    if (signOutOthers) await this.sessions.deleteOtherSessions(user.id, newCookieValue);
    response.redirect(303, signOutOthers ? '/?notice=password-changed-others-out' : '/?notice=password-changed');
  }

  /**
   * Deleting the account needs a recent login: with an older one the guard answers 403
   * RECENT_LOGIN_REQUIRED before this runs, and ForbiddenPageFilter sends the browser to
   * /reauthenticate. Forged cross-origin posts never get here either (crossOriginProtection).
   */
  @RequireRecentLogin(RECENT_LOGIN_MS)
  @Post('account/delete')
  async deleteAccount(@CurrentUser() user: User, @Req() request: Request, @Res() response: Response): Promise<void> {
    await this.cookies.logoutEverywhere(request, response); // every session of the user, and this cookie
    await this.users.delete(user);
    response.redirect(303, '/login?notice=account-deleted');
  }

  @Get('reauthenticate')
  showReauthenticate(@CurrentUser() user: User, @Res() response: Response): void {
    sendHtml(response, 200, reauthenticatePage({ user }));
  }

  /** "Confirm your password": checks it, then marks this session as freshly logged in (under a new id). */
  @Post('reauthenticate')
  async reauthenticate(
    @Body() body: unknown,
    @CurrentUser() user: User,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const password = formField(body, 'password');
    const plausible = passwordProblems(password).length === 0;
    if (!plausible || !(await this.users.verifyCredentials(user.username, password))) {
      sendHtml(response, 400, reauthenticatePage({ user, errors: ['That password is not correct.'] }));
      return;
    }
    await this.cookies.reauthenticate(request, response);
    response.redirect(303, '/?notice=reauthenticated#delete-account');
  }

  private async renderHome(
    user: User,
    session: Session,
    extra: { notice?: string; passwordErrors?: string[] },
  ): Promise<string> {
    const sessions = await this.sessions.listByUserId(user.id);
    return homePage({
      user,
      sessions,
      currentSessionId: session.id,
      authenticatedAt: session.authenticatedAt,
      now: new Date(),
      ...extra,
    });
  }
}
