/*
 * file.h - read whole files from the volume the loader was started from.
 *
 * Contract: file_open_boot_volume() finds the loader's own volume (LoadedImage
 * -> DeviceHandle -> SimpleFileSystem) and opens its root directory.
 * file_read_all() opens `path` read-only, refuses directories and files over
 * `max_size` bytes (EFI_BAD_BUFFER_SIZE), and reads every byte into one pool
 * buffer (EfiLoaderData) the caller frees with BS->FreePool. An empty file
 * is EFI_SUCCESS with *buf = NULL and *size = 0. On any error nothing stays
 * allocated or open. Messages are the caller's job.
 */
#ifndef BOOT_FILE_H
#define BOOT_FILE_H

#include <efi.h>

EFI_STATUS file_open_boot_volume(EFI_HANDLE image, EFI_FILE_HANDLE *root);
EFI_STATUS file_read_all(EFI_FILE_HANDLE root, const CHAR16 *path, UINT64 max_size,
                         void **buf, UINT64 *size);

#endif /* BOOT_FILE_H */
