# Writes public/icon-192.png and public/icon-512.png: the same picture as
# public/icon.svg (a rounded indigo square with three bars), and
# public/icon-maskable-512.png: the same bars on a square that fills every
# pixel (a launcher crops it to its own shape; the bars stay inside the
# centre circle of 40% radius that maskable icons keep), drawn pixel by
# pixel with the standard library so no image tool is needed. Run it by hand
# when the icon changes; the PNGs are committed.
import struct, zlib

def rounded(x, y, x0, y0, w, h, r):
    if not (x0 <= x < x0 + w and y0 <= y < y0 + h):
        return False
    cx = min(max(x, x0 + r), x0 + w - r)
    cy = min(max(y, y0 + r), y0 + h - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

def draw(size, maskable=False):
    s = size / 64
    shapes = [  # (x, y, w, h, r, rgb) in the 64-unit space of icon.svg
        (0, 0, 64, 64, 0 if maskable else 14, (0x4F, 0x46, 0xE5)),
        (14, 16, 36, 8, 4, (0xFF, 0xFF, 0xFF)),
        (14, 28, 26, 8, 4, (0xC7, 0xD2, 0xFE)),
        (14, 40, 18, 8, 4, (0xA5, 0xB4, 0xFC)),
    ]
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            x, y = (px + 0.5) / s, (py + 0.5) / s
            pixel = (0, 0, 0, 0)
            for (x0, y0, w, h, r, rgb) in shapes:
                if rounded(x, y, x0, y0, w, h, r):
                    pixel = rgb + (255,)
            row += bytes(pixel)
        rows.append(bytes(row))
    raw = b''.join(rows)
    def chunk(kind, data):
        c = struct.pack('>I', len(data)) + kind + data
        return c + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack('>IIBBBBB', size, size, 8, 6, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')

for n in (192, 512):
    with open(f'public/icon-{n}.png', 'wb') as f:
        f.write(draw(n))
with open('public/icon-maskable-512.png', 'wb') as f:
    f.write(draw(512, maskable=True))
