// Prometheus metrics for a broker and its limiter, with prom-client. Counters follow the
// broker's and the limiter's events; gauges read `stats()` when Prometheus scrapes.
//
// No metric has a channel label: channels are often per user or per job, and a label per
// channel would grow the series without bound.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** A registry with the metrics of `broker` and `limiter` (and Node's default metrics). */
export function longPollMetrics(broker, limiter) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const published = new Counter({ name: 'longpoll_messages_published_total', help: 'Messages published through this broker.', registers });
  const batches = new Counter({ name: 'longpoll_deliveries_total', help: 'Batches of messages delivered to held or returning polls.', registers });
  const answered = new Counter({ name: 'longpoll_polls_answered_total', help: 'Polls answered with messages.', registers });
  const delivered = new Counter({ name: 'longpoll_messages_delivered_total', help: 'Messages delivered, counted once per poll that received them.', registers });
  const timeouts = new Counter({ name: 'longpoll_poll_timeouts_total', help: 'Held polls whose wait ran out with nothing new.', registers });
  const evicted = new Counter({
    name: 'longpoll_messages_evicted_total',
    help: 'Messages that left the history, by reason (capacity or maxAge).',
    labelNames: ['reason'],
    registers,
  });
  const refused = new Counter({
    name: 'longpoll_limit_refusals_total',
    help: 'Polls refused with 429 by the connection limiter, by cap (client, channel or total).',
    labelNames: ['limit'],
    registers,
  });
  const engineErrors = new Counter({ name: 'longpoll_engine_errors_total', help: 'Engine failures while waking held polls.', registers });
  const closing = new Gauge({ name: 'longpoll_broker_closing', help: '1 once broker.close() was called.', registers });

  broker.on('publish', () => published.inc());
  broker.on('deliver', ({ messages, polls }) => {
    batches.inc();
    answered.inc(polls);
    delivered.inc(messages * polls);
  });
  broker.on('timeout', () => timeouts.inc());
  broker.on('evict', ({ count, reason }) => evicted.inc({ reason }, count));
  broker.on('error', () => engineErrors.inc());
  broker.on('close', () => closing.set(1));
  limiter.on('limit', ({ limit }) => refused.inc({ limit }));

  // Levels are read at scrape time: nothing to keep in step between scrapes.
  const level = (name, help, read) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  level('longpoll_channels', 'Channels holding messages or held polls.', () => broker.stats().channels);
  level('longpoll_held_polls', 'Polls held by the broker right now.', () => broker.stats().waiters);
  level('longpoll_history_messages', 'Messages kept in history over all channels.', () => broker.stats().messages);
  level('longpoll_leases', 'Leases held under the connection limiter.', () => limiter.stats().total);
  level('longpoll_lease_clients', 'Client keys holding at least one lease.', () => limiter.stats().clients);

  return registry;
}
