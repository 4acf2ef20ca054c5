import { GetObjectCommand, ListObjectVersionsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { anchorName, anchorTenantPrefix, parseAnchor, seqOfAnchorName, serializeAnchor } from '../core/audit-anchor-format';
import { AnchorExistsError, type AuditAnchor, type AuditAnchors, type StoredAuditAnchor } from '../core/ports';
import { awsErrorName } from './aws-errors';

const READ_CONCURRENCY = 8;

interface KeyHistory {
  /** Version ids, newest first, as S3 lists them. */
  versions: string[];
  deleteMarkers: number;
}

/**
 * Anchors in the cell's S3 Object Lock bucket (compliance mode, versioned). Writes carry
 * `If-None-Match: *` (the bucket policy refuses any other PutObject), so an anchor is written
 * once; the verifier reads the first version of each name and counts any later version or delete
 * marker as an attempt to rewrite it.
 */
export class S3AuditAnchors implements AuditAnchors {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new Error('S3AuditAnchors needs a bucket name');
  }

  async put(anchor: AuditAnchor): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: anchorName(anchor.tenantId, anchor.seq),
          Body: serializeAnchor(anchor),
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
    } catch (err) {
      const code = awsErrorName(err);
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (code === 'PreconditionFailed' || status === 412) throw new AnchorExistsError(`anchor #${anchor.seq} exists`);
      throw err;
    }
  }

  async list(tenantId: string): Promise<StoredAuditAnchor[]> {
    const history = await this.histories(tenantId);
    const entries = [...history.entries()];
    const out: StoredAuditAnchor[] = new Array(entries.length);
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const i = next++;
        out[i] = await this.read(tenantId, entries[i][0], entries[i][1]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, entries.length) }, worker));
    return out.sort((a, b) => a.seq - b.seq);
  }

  private async histories(tenantId: string): Promise<Map<string, KeyHistory>> {
    const byKey = new Map<string, KeyHistory>();
    const of = (key: string) => byKey.get(key) ?? byKey.set(key, { versions: [], deleteMarkers: 0 }).get(key)!;
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: anchorTenantPrefix(tenantId), KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
      );
      for (const v of page.Versions ?? []) if (v.Key) of(v.Key).versions.push(v.VersionId ?? 'null');
      for (const d of page.DeleteMarkers ?? []) if (d.Key) of(d.Key).deleteMarkers++;
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    return byKey;
  }

  private async read(tenantId: string, key: string, h: KeyHistory): Promise<StoredAuditAnchor> {
    const seq = seqOfAnchorName(tenantId, key) ?? 0;
    const laterVersions = Math.max(0, h.versions.length - 1) + h.deleteMarkers;
    const first = h.versions.at(-1);
    if (first === undefined || seq === 0) return { seq, anchor: undefined, laterVersions, malformed: true };
    const obj = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, VersionId: first }));
    const anchor = parseAnchor((await obj.Body?.transformToString('utf8')) ?? '', tenantId, seq);
    return { seq, anchor, laterVersions, malformed: anchor === undefined };
  }
}
