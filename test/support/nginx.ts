import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian installs nginx, for shells whose PATH lacks /usr/sbin. */
const DEBIAN_NGINX = '/usr/sbin/nginx';

/** The nginx binary: on PATH, else Debian's; `undefined` when neither exists. */
export function findNginx(): string | undefined {
  try {
    const found = execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim();
    if (found) return found;
  } catch {
    // not on PATH
  }
  return existsSync(DEBIAN_NGINX) ? DEBIAN_NGINX : undefined;
}

/** The configuration a test puts inside nginx's `http { }` and `server { }` blocks. */
export interface NginxSite {
  /** Directives of the `http` context, e.g. an `upstream` block. */
  readonly http: string;
  /** Directives of the `server` context, e.g. a `location` block. */
  readonly server: string;
}

/**
 * The README's nginx snippet, with the upstream pointed at `port`: its `upstream` block goes
 * into nginx's `http` context and its `location` block into a `server`. Nothing else changes.
 */
export async function readmeSite(port: number): Promise<NginxSite & { readonly snippet: string }> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const snippet = /<!-- nginx-snippet[^>]*-->\n```nginx\n([\s\S]*?)\n```\n<!-- \/nginx-snippet -->/.exec(readme)?.[1];
  if (snippet === undefined) throw new Error('README.md has no ```nginx block between <!-- nginx-snippet --> markers');
  const upstream = /^upstream\s+\S+\s*\{[\s\S]*?^\}/m.exec(snippet)?.[0];
  const location = /^location\s[^{]*\{[\s\S]*?^\}/m.exec(snippet)?.[0];
  if (!upstream || !location) throw new Error(`The README's nginx snippet needs an upstream and a location block:\n${snippet}`);
  const servers = upstream.match(/^\s*server\s+127\.0\.0\.1:\d+;/gm) ?? [];
  if (servers.length !== 1) throw new Error(`The README's upstream should name one server 127.0.0.1:PORT:\n${upstream}`);
  return { snippet, http: upstream.replace(/(server\s+127\.0\.0\.1:)\d+;/, `$1${port};`), server: location };
}

/** A running nginx, its own prefix directory and the origin it listens on. */
export interface RunningNginx {
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  /** The error log so far (for failure messages). */
  errorLog(): Promise<string>;
  /** Fast shutdown (SIGTERM), SIGKILL after 5 s; removes the prefix directory. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Everything nginx would otherwise write under /var (pid, logs, temp files) goes to `dir`, so
 * the test needs no privileges and leaves nothing behind.
 */
function configuration(dir: string, port: number, site: NginxSite): string {
  // As root, the workers would switch to `nobody`, who cannot write to a 0700 temp directory.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
    worker_connections 512;
}
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

${site.http}

    server {
        listen 127.0.0.1:${port};

${site.server}
    }
}
`;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  // The whole process group (detached below): the master and its workers.
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  signalGroup('SIGTERM');
  const timer = setTimeout(() => signalGroup('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `nginx -p dir -c dir/nginx.conf -g 'daemon off;'` as a child process in its own
 * temporary prefix, on a free port of 127.0.0.1, with `site` as its configuration. Resolves
 * once it accepts connections (bounded by `timeoutMs`); retries on another port if the one it
 * picked was taken meanwhile.
 */
export async function startNginx(binary: string, site: NginxSite, timeoutMs = 10_000): Promise<RunningNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'longpoll-nginx-'));
  const errorLog = () => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
  let lastFailure = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    await writeFile(conf, configuration(dir, port, site));
    const child = spawn(binary, ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && child.exitCode === null && !(await accepts(port))) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (child.exitCode === null && (await accepts(port))) {
      return {
        origin: `http://127.0.0.1:${port}`,
        errorLog,
        async stop() {
          await stopProcess(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await stopProcess(child);
    lastFailure = `${output}\n${await errorLog()}`;
    if (!/Address already in use/.test(lastFailure)) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`nginx did not start:\n${lastFailure}`);
}
