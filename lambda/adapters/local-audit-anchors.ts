import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { anchorName, anchorTenantPrefix, parseAnchor, seqOfAnchorName, serializeAnchor } from '../core/audit-anchor-format';
import { AnchorExistsError, type AuditAnchor, type AuditAnchors, type StoredAuditAnchor } from '../core/ports';

/**
 * Embedded anchors: files created with O_EXCL (mode 0444) under the local state directory, or a
 * map in memory. Same contract as the S3 adapter (written once, never replaced), but a file is
 * only as write-once as the file system's owner allows: a developer's gateway, not a cell.
 */
export class LocalAuditAnchors implements AuditAnchors {
  private readonly memory = new Map<string, string>();

  /** @param dir keep anchors in files here; default: in memory for the life of the process */
  constructor(private readonly dir?: string) {}

  async put(anchor: AuditAnchor): Promise<void> {
    const name = anchorName(anchor.tenantId, anchor.seq);
    const body = serializeAnchor(anchor);
    if (!this.dir) {
      if (this.memory.has(name)) throw new AnchorExistsError(`anchor #${anchor.seq} exists`);
      this.memory.set(name, body);
      return;
    }
    const file = join(this.dir, name);
    mkdirSync(join(this.dir, anchorTenantPrefix(anchor.tenantId)), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, body, { flag: 'wx', mode: 0o444 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AnchorExistsError(`anchor #${anchor.seq} exists`);
      throw err;
    }
  }

  async list(tenantId: string): Promise<StoredAuditAnchor[]> {
    const prefix = anchorTenantPrefix(tenantId);
    let entries: [string, string][];
    if (!this.dir) {
      entries = [...this.memory].filter(([name]) => name.startsWith(prefix));
    } else {
      const dir = join(this.dir, prefix);
      entries = existsSync(dir) ? readdirSync(dir).map((f) => [prefix + f, readFileSync(join(dir, f), 'utf8')]) : [];
    }
    return entries
      .map(([name, body]): StoredAuditAnchor => {
        const seq = seqOfAnchorName(tenantId, name) ?? 0;
        const anchor = seq > 0 ? parseAnchor(body, tenantId, seq) : undefined;
        return { seq, anchor, laterVersions: 0, malformed: anchor === undefined };
      })
      .sort((a, b) => a.seq - b.seq);
  }
}
