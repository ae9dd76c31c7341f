import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import {
  CurrentUser,
  Public,
  SessionCookies,
  type SessionCookieResponse,
  type SessionRequest,
} from 'nestjs-typeorm-session';

/** The README's login/logout controller, trimmed to what the check drives (`globalGuard: true`). */
@Controller()
export class AuthController {
  constructor(private readonly cookies: SessionCookies) {}

  @Public()
  @Post('login')
  @HttpCode(200)
  async login(@Body() body: { userId: string }, @Res({ passthrough: true }) response: SessionCookieResponse) {
    await this.cookies.login(response, body.userId);
    return { ok: true };
  }

  @Get('me')
  me(@CurrentUser() user: unknown) {
    return { user };
  }

  @Public()
  @Post('logout')
  @HttpCode(200)
  async logout(@Req() request: SessionRequest, @Res({ passthrough: true }) response: SessionCookieResponse) {
    await this.cookies.logout(request, response);
    return { ok: true };
  }
}
