import { z } from 'zod';
import { ApiError, errorResponse, HttpRequest, HttpResponse, jsonResponse, parseJsonBody } from './http';
import { dispatch, Route } from './route-table';
import { keyInventory, migrateBatch, RootKeyMigrationDeps } from './root-key-migration';
import type { TenantStore } from './store';
import { validate } from './validation';

export interface RootKeyMigrationAppDeps extends RootKeyMigrationDeps {
  /** Rewraps rows (tenant trails) and records each batch that changed anything in the cell's trail. */
  readonly store: Pick<TenantStore, 'rewrapSecret' | 'appendCellEvent'>;
  /** How long one call may work before it answers with a cursor (ms). */
  readonly batchBudgetMs: number;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

const migrateBody = z
  .object({
    cursor: z.string().min(1).max(2048).optional(),
    pageSize: z.number().int().min(1).max(500).default(100),
  })
  .strict();

/**
 * The root-key migration function's API (operators, AWS_IAM): `GET /admin/root-key/status`
 * counts rows per key; `POST /admin/root-key/migrate` moves rows to the current key for up to
 * `batchBudgetMs` and answers with progress and a cursor to continue from.
 */
export function createRootKeyMigrationApp(deps: RootKeyMigrationAppDeps): (req: HttpRequest) => Promise<HttpResponse> {
  const now = deps.now ?? Date.now;
  const routes: Route[] = [
    ['GET', '/admin/root-key/status', async () => jsonResponse(200, await keyInventory(deps, 500))],
    [
      'POST',
      '/admin/root-key/migrate',
      async (req) => {
        const body = validate(migrateBody, parseJsonBody(req, 8192));
        if (deps.sourceKeyArns.length === 0) {
          throw new ApiError(409, 'no_previous_root_key', 'This cell names no previous root key (previousRootKeyArns); there is nothing to migrate.');
        }
        const actor = `iam:${req.iamCaller}`;
        const progress = await migrateBatch(deps, { cursor: body.cursor, pageSize: body.pageSize, stopAfter: now() + deps.batchBudgetMs, actor, now });
        // The operation itself, in the cell's own authenticated trail (each row's rewrap is in
        // its tenant's): every batch that moved, lost or refused a row, and the one that finished.
        if (progress.rewrapped + progress.raced + progress.failed > 0 || progress.done) {
          await deps.store.appendCellEvent(deps.region, {
            type: 'root-key.migration',
            actor,
            details: {
              targetKeyArn: deps.rewrapper.targetKeyArn,
              sourceKeyArns: deps.sourceKeyArns.join(','),
              scanned: progress.scanned,
              rewrapped: progress.rewrapped,
              alreadyCurrent: progress.alreadyCurrent,
              raced: progress.raced,
              otherKey: progress.otherKey,
              failed: progress.failed,
              done: progress.done,
            },
          });
        }
        return jsonResponse(200, { targetKeyArn: deps.rewrapper.targetKeyArn, ...progress });
      },
    ],
  ];
  return async (req) => {
    try {
      if (!req.iamCaller) throw new ApiError(403, 'iam_auth_required', 'Admin routes require AWS_IAM (SigV4) authorization.');
      return await dispatch(routes, req);
    } catch (err) {
      const name = (err as { name?: string })?.name;
      const mapped =
        name === 'CursorError'
          ? new ApiError(400, 'invalid_cursor', 'The cursor is not one this command returned; start again without it (the migration is idempotent).')
          : name === 'KeyServiceError'
            ? new ApiError(503, 'key_service_unavailable', 'KMS could not serve the rewrap; nothing was lost. Run the command again with the last cursor.')
            : err;
      if (!(mapped instanceof ApiError) || mapped.status >= 500) deps.onError?.(err);
      return errorResponse(mapped);
    }
  };
}
