import { jest } from '@jest/globals';

/**
 * Fakes only `Date` (and `Date.now()`), starting at `now`: timers, the event loop and the
 * database drivers keep running on real time, so an app under test can still talk to its
 * database while it believes another time. Undo with `jest.useRealTimers()`.
 */
export function fakeDateOnly(now: number | Date, { advance = false } = {}): void {
  jest.useFakeTimers({
    now,
    advanceTimers: advance,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  });
}
