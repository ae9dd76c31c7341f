import { Injectable } from '@nestjs/common';

/**
 * Deletes expired sessions on a cron schedule, in batches, once across instances.
 * (Being built in issue 4.)
 * @publicApi
 */
@Injectable()
export class SessionPurgeService {}
