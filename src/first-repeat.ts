/**
 * The first element of `list` that an earlier one equals, if any. Compares pairs while the list
 * is as short as the HTTP layer allows by default (32 channels), which needs no set; a set
 * past that, so that a long list is not quadratic.
 */
export function firstRepeat<T>(list: readonly T[]): T | undefined {
  if (list.length > 64) {
    const seen = new Set<T>();
    return list.find((item) => seen.has(item) || !seen.add(item));
  }
  for (let i = 1; i < list.length; i++) {
    for (let j = 0; j < i; j++) if (list[j] === list[i]) return list[i];
  }
  return undefined;
}
