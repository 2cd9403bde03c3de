import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away fake S3 (s3rver) for tests: loopback, a free port, its own temp directory, one
 * bucket. s3rver knows a single key pair (S3RVER/S3RVER) and rejects unknown access key ids
 * (InvalidAccessKeyId); it does not verify V4 signatures, so a wrong secret goes unnoticed.
 */
export interface TestS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Environment for the standard AWS credential chain (and a child pitr process). */
  env: Record<string, string>;
  /** The directory s3rver stores objects in. */
  directory: string;
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);

export async function startS3(options: { bucket?: string } = {}): Promise<TestS3> {
  const S3rver = require('s3rver') as S3rverClass;
  const bucket = options.bucket ?? 'pitr-exports';
  const directory = await mkdtemp(join(tmpdir(), 'pitr-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const region = 'us-east-1';
  let stopped = false;
  return {
    endpoint,
    bucket,
    region,
    credentials,
    directory,
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: region,
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close().catch(() => undefined);
      await rm(directory, { recursive: true, force: true });
    },
  };
}
