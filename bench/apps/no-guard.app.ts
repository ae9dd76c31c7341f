import { Module } from '@nestjs/common';
import { meController } from './me.controller.js';
import { serve } from './serve.js';

/** App 1: no guard at all, the framework's ceiling. */
@Module({ controllers: [meController()] })
class NoGuardApp {}

await serve(NoGuardApp);
