import { describe, expect, it } from 'vitest'
import { etagVersion } from './api'

describe('etagVersion', () => {
  it('reads the version of a strong or weak ETag', () => {
    expect(etagVersion('"14"')).toBe(14)
    expect(etagVersion('W/"7"')).toBe(7)
    expect(etagVersion(' "0" ')).toBe(0)
  })
  it('is undefined without a version', () => {
    expect(etagVersion(null)).toBeUndefined()
    expect(etagVersion('')).toBeUndefined()
    expect(etagVersion('"abc"')).toBeUndefined()
    expect(etagVersion('14')).toBeUndefined()
  })
})
