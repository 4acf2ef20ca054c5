/**
 * docs/threat-model.md names the test behind every claim. This keeps the names honest: every test
 * file it cites exists, and every quoted test name (the parts between `›`) occurs in that file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..', '..');
const DOC = fs.readFileSync(path.join(ROOT, 'docs', 'threat-model.md'), 'utf8');

/**
 * `file` followed by ` › name › name …`, and `; › name` continuations of the same file, up to the
 * next `|` or backtick (a `;` followed by anything but `›` ends the file's names).
 */
function citations(doc: string): { file: string; names: string[] }[] {
  const out: { file: string; names: string[] }[] = [];
  const re = /`(test\/[^`]+?\.ts)`([^|`\n]*)/g;
  for (const m of doc.matchAll(re)) {
    const own = m[2].split(/;(?!\s*›)/)[0];
    const names = own
      .split('›')
      .slice(1)
      // A quote may leave out words (…) and end in a remark in parentheses: each piece must occur.
      .flatMap((n) => n.replace(/;\s*$/, '').replace(/\(.*$/, '').split('…'))
      .map((n) => n.trim())
      .filter((n) => n.length > 0);
    out.push({ file: m[1], names });
  }
  return out;
}

const cited = citations(DOC);

test('the threat model cites tests', () => {
  expect(cited.length).toBeGreaterThan(50);
});

test.each(cited.map((c) => [c.file, c.names] as const))('%s exists and holds the quoted names %j', (file, names) => {
  const full = path.join(ROOT, file);
  expect(fs.existsSync(full)).toBe(true);
  const source = fs.readFileSync(full, 'utf8').replace(/\\'/g, "'");
  for (const name of names) {
    const fragment = name;
    expect({ file, fragment, found: source.includes(fragment) }).toEqual({ file, fragment, found: true });
  }
});
