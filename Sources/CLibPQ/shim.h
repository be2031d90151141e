#ifndef SWITCHYARD_CLIBPQ_SHIM_H
#define SWITCHYARD_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
