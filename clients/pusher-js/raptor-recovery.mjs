// Exact recovery for apps on the published pusher-js (8.x) against Raptor (docs/history.md).
//
// pusher-js drops the top-level fields of incoming messages, so an app never sees the
// `"offset"` Raptor puts on the events of channels with history, and its subscribe frame is
// fixed, so it cannot ask to recover. This helper, ~100 lines and no dependencies, does both
// around an unmodified pusher-js:
//
//   * it reads every raw message of the current transport (before pusher-js decodes it) and
//     keeps, per channel, the position after the last event received: the epoch from the
//     channel's `raptor:recovery` event, the offset from each event;
//   * on every (re)connection, from pusher-js's `state_change` to `connected` (which pusher-js
//     emits before it resubscribes its channels), it sends
//     `raptor:recover {"positions": {channel: {offset, epoch}}}`; Raptor applies each position
//     to the next `pusher:subscribe` of that channel and replays what was missed between
//     `subscription_succeeded` and the live events, exactly once, in order — or says
//     "not recovered" and replays nothing.
//
// Usage:
//   import Pusher from 'pusher-js';
//   import { enableRecovery } from './raptor-recovery.mjs';
//   const pusher = new Pusher(key, options);
//   const recovery = enableRecovery(pusher, {
//     onRecovery: (channel, r) => { if (r.was_recovering && !r.recovered) reloadFromBackend(channel); },
//   });
// With Laravel Echo: enableRecovery(echo.connector.pusher, ...).
//
// It relies on one pusher-js internal that is stable across 7.x and 8.x: the connection
// manager's current `connection.transport`, which emits each raw `message`. Pinned by
// tests/interop/node/history.test.mjs against pusher-js 8.6.0.

/**
 * @param {import('pusher-js').default} pusher  a pusher-js client (connected or not)
 * @param {{
 *   positions?: Record<string, {offset: number, epoch: string}>,
 *   onRecovery?: (channel: string, result: {was_recovering: boolean, recovered: boolean, epoch: string, offset: number, replayed: number}) => void,
 * }} [options]  `positions`: a starting point (e.g. saved across a page reload)
 * @returns {{ positions: () => Record<string, {offset: number, epoch: string}>, forget: (channel: string) => void }}
 */
export function enableRecovery(pusher, options = {}) {
  const positions = new Map(Object.entries(options.positions || {}));
  const onRecovery = options.onRecovery || (() => {});
  let hooked = null;

  const onRaw = (messageEvent) => {
    let m;
    try {
      m = JSON.parse(messageEvent.data);
    } catch {
      return;
    }
    if (!m || typeof m.channel !== 'string') return;
    if (m.event === 'raptor:recovery') {
      let r;
      try {
        r = typeof m.data === 'string' ? JSON.parse(m.data) : m.data;
      } catch {
        return;
      }
      // An empty epoch: the server could not say (the owning node was unreachable);
      // nothing to recover from next time.
      if (r.epoch) positions.set(m.channel, { offset: r.offset, epoch: r.epoch });
      else positions.delete(m.channel);
      onRecovery(m.channel, r);
      return;
    }
    const known = positions.get(m.channel);
    if (typeof m.offset === 'number' && known && m.offset > known.offset) {
      positions.set(m.channel, { offset: m.offset, epoch: known.epoch });
    }
  };

  const onStateChange = ({ current }) => {
    if (current !== 'connected') return;
    const transport = pusher.connection.connection && pusher.connection.connection.transport;
    if (transport && transport !== hooked) {
      transport.bind('message', onRaw);
      hooked = transport;
    }
    // Only channels pusher-js is about to (re)subscribe.
    const wanted = {};
    for (const ch of pusher.allChannels()) {
      const p = positions.get(ch.name);
      if (p) wanted[ch.name] = p;
    }
    if (Object.keys(wanted).length > 0) {
      pusher.send_event('raptor:recover', { positions: wanted });
    }
  };

  pusher.connection.bind('state_change', onStateChange);
  if (pusher.connection.state === 'connected') {
    onStateChange({ current: 'connected' });
  }

  return {
    positions: () => Object.fromEntries(positions),
    forget: (channel) => positions.delete(channel),
  };
}
