/*
 * qr_png: a short text (an otpauth:// URI) as a QR code (libqrencode) in a PNG image (libpng),
 * built in memory: black modules on white, 1 bit per pixel, each module QR_PNG_SCALE pixels
 * wide, with the 4-module quiet zone that scanners need. Error correction level M (15%).
 *
 * Takes well under a millisecond for a URI, so it runs on the event loop.
 */
#ifndef EDGEGATE_API_QR_PNG_H
#define EDGEGATE_API_QR_PNG_H

#include "common/buf.h"

#define QR_PNG_SCALE 6
#define QR_PNG_MAX_BYTES (64 * 1024)

/* Writes the PNG of text into out, an empty buffer that the caller frees (its cap becomes
 * QR_PNG_MAX_BYTES). 0, or -1 (text too long for a QR code, no memory, image over the cap);
 * out may then hold part of an image. */
int qr_png(const char *text, buf_t *out);

#endif
