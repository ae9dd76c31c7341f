import { type CanActivate, type ExecutionContext, Injectable, Module } from '@nestjs/common';
import { meController } from './me.controller.js';
import { serve } from './serve.js';

/**
 * App 6 (only with `--apps 6`): a guard that reads the request and lets it through. Against
 * app 1 it is what Nest's guard machinery costs per request (the execution context, the
 * async activation); against app 5, what is left is the package's own work.
 */
@Injectable()
class EmptyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest() !== undefined;
  }
}

@Module({ controllers: [meController(EmptyGuard)] })
class EmptyGuardApp {}

await serve(EmptyGuardApp);
