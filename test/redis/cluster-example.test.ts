import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { redisAvailable } from '../support/redis-server.js';
import { poll, publish } from './http-client.js';

/** Runs `node examples/cluster/start.js` and waits, at most 15 s, for its two instance URLs. */
async function startCluster(): Promise<{ child: ChildProcess; redis: string; urls: URL[] }> {
  const child = spawn(process.execPath, ['examples/cluster/start.js'], {
    env: { ...process.env, PORT: '0', REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URLs within 15 s:\n${output}`)), 15_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const redis = /redis on (redis:\/\/\S+)/.exec(output)?.[1];
        const urls = [...output.matchAll(/^[ab] on (http:\/\/\S+)/gm)].map((match) => new URL(match[1]!));
        if (redis && urls.length === 2) {
          clearTimeout(timer);
          resolve({ child, redis, urls });
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`start.js exited with ${code}:\n${output}`)));
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

describe.runIf(redisAvailable())('examples/cluster/start.js', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;

  afterAll(() => {
    if (cluster && cluster.child.exitCode === null) cluster.child.kill('SIGKILL');
  });

  it('starts Redis and two instances that share one history, with one command', async () => {
    // REDIS_URL is emptied above, so the script starts a redis-server of its own.
    cluster = await startCluster();
    const [a, b] = cluster.urls as [URL, URL];
    const { cursor } = (await poll(a, 'demo', { wait: 0 })).body;
    const held = poll(a, 'demo', { cursor, wait: 5 });
    expect((await publish(b, 'demo', { text: 'hi' })).status).toBe(201);
    const answer = await held;
    expect(answer.body.messages!.map((m) => m.data)).toEqual([{ text: 'hi' }]);
  });

  it('stops both instances and its redis-server on SIGTERM', async () => {
    const { child, redis, urls } = cluster!;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await Promise.race([exited, new Promise((_, reject) => setTimeout(() => reject(new Error('no exit within 8 s')), 8_000))])) as [number];
    expect(code).toBe(0);
    await expect(fetch(urls[0]!, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
    const port = Number(new URL(redis).port);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('error', () => resolve(true));
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
    });
    expect(refused).toBe(true);
  });
});
