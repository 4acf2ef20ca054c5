/**
 * The tenant factors one request may need, opened with the presented token at most once per
 * generation (during a factor change, rows of two generations are current) and zero-filled when
 * the request ends.
 */
import { factorForGeneration } from '../factor-generations';
import { ApiError } from '../http';
import type { FactorBinding } from '../tenant-factor';
import type { TokenRecord } from '../tenant-model';

export class RequestFactors {
  /** Made at the first factor opened (a managed tenant's request opens none: no Map per request). */
  private opened?: Map<number, Buffer>;

  constructor(
    private readonly token: TokenRecord,
    private readonly binding: FactorBinding,
  ) {}

  /** The factor of `generation`; undefined for generation 0 (managed). */
  of(generation: number): Buffer | undefined {
    if (generation === 0) return undefined;
    let f = this.opened?.get(generation);
    if (!f) {
      f = factorForGeneration(this.token, this.binding, generation);
      if (!f) throw new ApiError(403, 'token_without_factor', 'This token cannot open the tenant vault.');
      (this.opened ??= new Map()).set(generation, f);
    }
    return f;
  }

  zeroize(): void {
    if (this.opened === undefined) return;
    for (const f of this.opened.values()) f.fill(0);
    this.opened.clear();
  }
}
