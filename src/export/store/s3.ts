import { Readable, Transform } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { badInput, PitrError } from '../../errors.js';
import { redactSecrets, redactUrl, registerSecret } from '../../redact.js';
import type { ExportObject, ExportStore, ExportStoreOptions, WriteOptions } from './index.js';
import { assertKey, assertPrefix, formatExportLocation } from './location.js';
import { bodyFailure, DEFAULT_PART_SIZE, errnoCode, errorMessage, mapStreamErrors, MIB, PARTIAL_SUFFIX, S3_MAX_PARTS, SMALL_OBJECT_LIMIT, tooLarge, toBuffer, UPLOAD_QUEUE_SIZE } from './shared.js';

type S3Sdk = typeof import('@aws-sdk/client-s3');
type StorageSdk = typeof import('@aws-sdk/lib-storage');
let s3Sdk: Promise<S3Sdk> | undefined;
let storageSdk: Promise<StorageSdk> | undefined;
// Loaded on first use: commands that never touch S3 do not pay for the SDK.
const loadS3 = (): Promise<S3Sdk> => (s3Sdk ??= import('@aws-sdk/client-s3'));
const loadStorage = (): Promise<StorageSdk> => (storageSdk ??= import('@aws-sdk/lib-storage'));

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);

function networkCode(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 3) return undefined;
  const code = errnoCode(err);
  if (code && NETWORK_CODES.has(code)) return code;
  if ((err as { name?: unknown }).name === 'TimeoutError') return 'timed out';
  for (const inner of (err as { errors?: unknown[] }).errors ?? []) {
    const c = networkCode(inner, depth + 1);
    if (c) return c;
  }
  return networkCode((err as { cause?: unknown }).cause, depth + 1);
}

export class S3Store implements ExportStore {
  readonly kind = 's3' as const;
  readonly location: string;
  private readonly base: string;
  private readonly endpoint: string | undefined;
  private readonly region: string;
  private client: Promise<S3Client> | undefined;
  private closed = false;

  constructor(
    private readonly bucket: string,
    prefix: string,
    private readonly options: ExportStoreOptions,
  ) {
    this.location = formatExportLocation({ kind: 's3', bucket, prefix });
    this.base = prefix ? `${prefix}/` : '';
    this.region = options.s3Region ?? process.env.AWS_REGION ?? 'us-east-1';
    if (options.s3Endpoint !== undefined) {
      let url: URL;
      try {
        url = new URL(options.s3Endpoint);
      } catch {
        throw badInput('bad_s3_endpoint', `invalid S3 endpoint "${redactSecrets(options.s3Endpoint)}": give a URL like https://host:port`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw badInput('bad_s3_endpoint', `invalid S3 endpoint ${redactUrl(options.s3Endpoint)}: use http:// or https://`);
      }
      if (url.password) registerSecret(decodeURIComponent(url.password));
      this.endpoint = options.s3Endpoint;
    }
  }

  /** Where requests go, for messages. */
  private get printableEndpoint(): string {
    const configured = this.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    return configured ? redactUrl(configured).replace(/\/$/, '') : `https://s3.${this.region}.amazonaws.com`;
  }

  private getClient(): Promise<S3Client> {
    if (this.closed) throw new PitrError('export_store_closed', `the export store for ${this.location} is closed`);
    this.client ??= (async () => {
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      registerSecret(process.env.AWS_SECRET_ACCESS_KEY);
      registerSecret(process.env.AWS_SESSION_TOKEN);
      const { S3Client } = await loadS3();
      const custom = this.endpoint !== undefined;
      return new S3Client({
        region: this.region,
        ...(custom ? { endpoint: this.endpoint } : {}),
        forcePathStyle: this.options.s3ForcePathStyle ?? custom,
        // Many S3-compatible servers reject the SDK's default flexible checksums; the export
        // format carries its own authentication, so only send checksums S3 requires.
        ...(custom && !process.env.AWS_REQUEST_CHECKSUM_CALCULATION ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const } : {}),
        ...(custom && !process.env.AWS_RESPONSE_CHECKSUM_VALIDATION ? { responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
        // Fail fast on a black-holed endpoint; no overall request timeout (parts may be slow).
        requestHandler: { connectionTimeout: 10_000 },
      });
    })();
    return this.client;
  }

  close(): void {
    this.closed = true;
    void this.client?.then((c) => c.destroy(), () => undefined);
  }

  private objectKey(key: string): string {
    return this.base + key;
  }

  /** One line for any S3 failure; never includes credentials. */
  private fail(err: unknown, action: string, key?: string): PitrError {
    if (err instanceof PitrError) return err;
    const net = networkCode(err);
    if (net) {
      const verb = net === 'ECONNRESET' || net === 'EPIPE' || net === 'ECONNABORTED' ? 'lost the connection to' : 'cannot reach';
      return new PitrError('s3_unreachable', `${verb} S3 endpoint ${this.printableEndpoint} (${net}) while ${action}`, { cause: err });
    }
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
    const name = e?.Code ?? e?.name ?? 'Error';
    const status = e?.$metadata?.httpStatusCode;
    const where = key ? `${this.location}/${key}` : this.location;
    if (name === 'NoSuchKey' || (name === 'NotFound' && key)) {
      return new PitrError('export_not_found', `no such export file ${key ?? ''} in ${this.location}`, { cause: err });
    }
    if (name === 'NoSuchBucket') {
      return new PitrError('s3_no_bucket', `S3 bucket "${this.bucket}" does not exist (endpoint ${this.printableEndpoint})`, { cause: err });
    }
    if (CREDENTIAL_ERRORS.has(name)) {
      return new PitrError(
        's3_access_denied',
        `S3 refused the credentials (${name}) while ${action}: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`,
        { cause: err },
      );
    }
    if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
      return new PitrError(
        's3_access_denied',
        `S3 refused the credentials access to ${where} (${name}) while ${action}: check the credentials and the bucket policy`,
        { cause: err },
      );
    }
    if (name === 'CredentialsProviderError') {
      return new PitrError('s3_no_credentials', 'no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE', {
        cause: err,
      });
    }
    if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || status === 301) {
      return new PitrError('s3_wrong_region', `S3 bucket "${this.bucket}" is not in region ${this.region}: set AWS_REGION to the bucket's region`, {
        cause: err,
      });
    }
    const detail = errorMessage(err);
    return new PitrError('s3_failed', `S3 failed while ${action} (${name}${status ? ` ${status}` : ''})${detail && detail !== name ? `: ${detail}` : ''}`, {
      cause: err,
    });
  }

  async write(key: string, body: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    assertKey(key);
    const action = `writing ${key} to ${this.location}`;
    let bytes = 0;
    let bodyError: unknown;
    const counter = new Transform({
      transform(chunk: unknown, _encoding, callback) {
        try {
          const buf = toBuffer(chunk);
          bytes += buf.length;
          options.onProgress?.(bytes);
          callback(null, buf);
        } catch (err) {
          bodyError ??= err;
          callback(err as Error);
        }
      },
    });
    // Not stream.pipeline: when the Upload gives up it destroys `counter`, and pipeline would then
    // fail `body` with "premature close", which would look like the producer's fault.
    body.on('error', (err) => {
      bodyError ??= err;
      counter.destroy(err as Error);
    });
    body.pipe(counter);
    try {
      const [client, { Upload }] = await Promise.all([this.getClient(), loadStorage()]);
      const partSize = Math.max(DEFAULT_PART_SIZE, Math.ceil(((options.sizeHint ?? 0) * 1.25) / S3_MAX_PARTS / MIB) * MIB);
      const upload = new Upload({
        client,
        params: { Bucket: this.bucket, Key: this.objectKey(key), Body: counter, ContentType: 'application/octet-stream' },
        partSize,
        queueSize: UPLOAD_QUEUE_SIZE,
        leavePartsOnError: false, // abort the multipart upload: no orphaned parts, no partial object
      });
      await upload.done();
      return { bytes };
    } catch (err) {
      counter.destroy();
      if (!body.destroyed) body.destroy();
      if (bodyError !== undefined) throw bodyFailure(bodyError, key, this.location);
      if (err instanceof Error && /Exceeded \d+ parts/.test(err.message)) {
        throw new PitrError('s3_failed', `${key} is too large for S3 with ${DEFAULT_PART_SIZE / MIB} MiB parts: pass a size hint`, { cause: err });
      }
      throw this.fail(err, action, key);
    }
  }

  async writeSmall(key: string, data: string | Buffer): Promise<void> {
    assertKey(key);
    try {
      const [client, { PutObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      await client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Body: typeof data === 'string' ? Buffer.from(data) : data,
          ContentType: key.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        }),
      );
    } catch (err) {
      throw this.fail(err, `writing ${key} to ${this.location}`, key);
    }
  }

  private async getObject(key: string): Promise<{ body: Readable; length: number | undefined }> {
    assertKey(key);
    try {
      const [client, { GetObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      const res = await client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      if (!(res.Body instanceof Readable)) throw new Error('S3 returned no object body');
      return { body: res.Body, length: res.ContentLength };
    } catch (err) {
      throw this.fail(err, `reading ${key} from ${this.location}`, key);
    }
  }

  async read(key: string): Promise<Readable> {
    const { body } = await this.getObject(key);
    return mapStreamErrors(body, (err) => this.fail(err, `reading ${key} from ${this.location}`, key));
  }

  async readSmall(key: string): Promise<Buffer> {
    const { body, length } = await this.getObject(key);
    if (length !== undefined && length > SMALL_OBJECT_LIMIT) {
      body.destroy();
      throw tooLarge(key, this.location, length);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of body) {
        const buf = toBuffer(chunk);
        total += buf.length;
        if (total > SMALL_OBJECT_LIMIT) {
          body.destroy();
          throw tooLarge(key, this.location, total);
        }
        chunks.push(buf);
      }
    } catch (err) {
      throw this.fail(err, `reading ${key} from ${this.location}`, key);
    }
    return Buffer.concat(chunks);
  }

  async list(prefix = ''): Promise<ExportObject[]> {
    assertPrefix(prefix);
    const out: ExportObject[] = [];
    try {
      const [client, { ListObjectsV2Command }] = await Promise.all([this.getClient(), loadS3()]);
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base + prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }),
        );
        for (const obj of page.Contents ?? []) {
          const key = obj.Key?.slice(this.base.length);
          if (!key || key.includes('/') || key.startsWith('.') || key.endsWith(PARTIAL_SUFFIX)) continue;
          out.push({ key, bytes: obj.Size ?? 0, modified: obj.LastModified ?? new Date(0) });
        }
        token = page.NextContinuationToken; // only present while more pages follow
      } while (token);
    } catch (err) {
      throw this.fail(err, `listing ${this.location}`);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async remove(key: string): Promise<void> {
    assertKey(key);
    try {
      const [client, { DeleteObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      throw this.fail(err, `removing ${key} from ${this.location}`, key);
    }
  }
}
