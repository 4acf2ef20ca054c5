/**
 * Detailed help of single commands (`sovereign-router <group> <action> --help`): what the
 * command does, what it destroys, and how to recover when it fails. The short list is HELP in main.ts.
 */
export const COMMAND_HELP: Readonly<Record<string, string>> = {
  'tenants offboard': `Usage: sovereign-router tenants offboard <tenant-id> --yes [--endpoint URL] [--region REGION] [--json]

Crypto-shreds and deletes a tenant (operator; DELETE /admin/tenants/<tenant-id>, SigV4 on a cell).
Steps, in this order, each safe to repeat:
  1. marks the tenant 'offboarding': its tokens stop working, no other change can land;
  2. destroys the tenant's erasure key (its own table: no PITR, no backups). From this moment no
     copy of the other tables (PITR, on-demand or AWS Backup backups, exports) can open the
     tenant's sealed secrets, even with KMS Decrypt;
  3. deletes its tokens and sealed secrets;
  4. marks it 'offboarded' and appends 'tenant.offboarded' to its authenticated audit trail
     (secretsDestroyed, tokensRevoked, erasureKeyDestroyed, legacySecretsNotShredded).

Output: the JSON result on stdout; a one-line summary on stderr.
Failure: if the command fails or is interrupted, the tenant stays 'offboarding' (frozen, tokens
refused); run the same command again: it resumes where it stopped and records the event once.
A tenant already offboarded answers 409 tenant_offboarded and nothing changes.
legacySecretsNotShredded > 0: rows sealed before erasure keys (format v1) were deleted, but a
backup taken before today still holds them openable with KMS access until that backup expires.
Irreversible: the tenant id stays taken; its audit trail stays readable (tenants audit).
`,
};
