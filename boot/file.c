/* file.c - whole-file reads from the boot volume (contract in file.h). */
#include <efi.h>
#include <efilib.h>
#include "boot/file.h"

/* Some FAT drivers misbehave on very large single reads: go in slices. */
#define READ_CHUNK (4u << 20)

EFI_STATUS file_open_boot_volume(EFI_HANDLE image, EFI_FILE_HANDLE *root)
{
	EFI_LOADED_IMAGE *li = NULL;
	EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *fs = NULL;
	EFI_STATUS st;

	st = BS->HandleProtocol(image, &LoadedImageProtocol, (void **)&li);
	if (EFI_ERROR(st))
		return st;
	if (!li || !li->DeviceHandle)
		return EFI_NOT_FOUND;
	st = BS->HandleProtocol(li->DeviceHandle, &FileSystemProtocol, (void **)&fs);
	if (EFI_ERROR(st))
		return st;
	return fs->OpenVolume(fs, root);
}

static EFI_STATUS file_size(EFI_FILE_HANDLE fh, UINT64 *size)
{
	EFI_FILE_INFO *info = LibFileInfo(fh);   /* pool-allocated */
	if (!info)
		return EFI_DEVICE_ERROR;
	EFI_STATUS st = EFI_SUCCESS;
	if (info->Attribute & EFI_FILE_DIRECTORY)
		st = EFI_NOT_FOUND;
	*size = info->FileSize;
	BS->FreePool(info);
	return st;
}

static EFI_STATUS read_exact(EFI_FILE_HANDLE fh, UINT8 *dst, UINT64 size)
{
	UINT64 done = 0;
	while (done < size) {
		UINTN n = size - done > READ_CHUNK ? READ_CHUNK : (UINTN)(size - done);
		EFI_STATUS st = fh->Read(fh, &n, dst + done);
		if (EFI_ERROR(st))
			return st;
		if (n == 0)
			return EFI_END_OF_FILE;   /* shorter than FileInfo said */
		done += n;
	}
	return EFI_SUCCESS;
}

EFI_STATUS file_read_all(EFI_FILE_HANDLE root, const CHAR16 *path, UINT64 max_size,
                         void **buf, UINT64 *size)
{
	EFI_FILE_HANDLE fh;
	EFI_STATUS st;
	void *p = NULL;

	*buf = NULL;
	*size = 0;
	st = root->Open(root, &fh, (CHAR16 *)path, EFI_FILE_MODE_READ, 0);
	if (EFI_ERROR(st))
		return st;
	UINT64 n = 0;
	st = file_size(fh, &n);
	if (!EFI_ERROR(st) && n > max_size)
		st = EFI_BAD_BUFFER_SIZE;
	if (!EFI_ERROR(st) && n > 0) {
		st = BS->AllocatePool(EfiLoaderData, n, &p);
		if (!EFI_ERROR(st)) {
			st = read_exact(fh, p, n);
			if (EFI_ERROR(st)) {
				BS->FreePool(p);
				p = NULL;
			}
		}
	}
	fh->Close(fh);
	if (EFI_ERROR(st))
		return st;
	*buf = p;
	*size = n;
	return EFI_SUCCESS;
}
