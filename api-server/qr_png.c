#include "api-server/qr_png.h"

#include <png.h>
#include <qrencode.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QUIET_ZONE 4 /* modules of white around the code (ISO/IEC 18004) */

static void on_png_error(png_structp png, png_const_charp msg)
{
    (void)msg; /* the caller reports the failure; libpng's text would only go to stderr */
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_png_write(png_structp png, png_bytep data, size_t len)
{
    buf_t *out = png_get_io_ptr(png);
    if (buf_append(out, data, len) < 0)
        png_error(png, "image too large");
}

static void on_png_flush(png_structp png)
{
    (void)png;
}

/* 1 when the module at (x, y) of the padded image is dark. */
static int dark(const QRcode *qr, int x, int y)
{
    x -= QUIET_ZONE;
    y -= QUIET_ZONE;
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return 0;
    return qr->data[y * qr->width + x] & 1; /* bit 0 of each byte: dark module */
}

/* libpng reports errors by longjmp back to here; nothing below setjmp is used after it. */
static int render(png_structp png, png_infop info, const QRcode *qr, uint8_t *row,
                  unsigned side)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_IHDR(png, info, side, side, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (unsigned y = 0; y < side; y++) {
        memset(row, 0xff, (side + 7) / 8); /* bit 1 is white in 1-bit grayscale */
        for (unsigned x = 0; x < side; x++)
            if (dark(qr, (int)(x / QR_PNG_SCALE), (int)(y / QR_PNG_SCALE)))
                row[x / 8] &= (uint8_t) ~(0x80u >> (x % 8));
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    return 0;
}

int qr_png(const char *text, buf_t *out)
{
    out->max = QR_PNG_MAX_BYTES;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL)
        return -1;
    unsigned side = (unsigned)(qr->width + 2 * QUIET_ZONE) * QR_PNG_SCALE;
    uint8_t *row = malloc((side + 7) / 8);
    png_structp png = NULL;
    png_infop info = NULL;
    int rc = -1;
    if (row != NULL)
        png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, on_png_error, on_png_warning);
    if (png != NULL)
        info = png_create_info_struct(png);
    if (info != NULL) {
        png_set_write_fn(png, out, on_png_write, on_png_flush);
        rc = render(png, info, qr, row, side);
    }
    if (png != NULL)
        png_destroy_write_struct(&png, info != NULL ? &info : NULL);
    free(row);
    QRcode_free(qr);
    return rc;
}
