# Declarations of the parts of CHOLMOD (SuiteSparse, cholmod.h) that mmfast's kernels use.
# The int (32-bit index) interface; CHOLMOD 3 (Debian bookworm) and later.

cdef extern from "cholmod.h" nogil:
    enum:
        CHOLMOD_INT
        CHOLMOD_REAL
        CHOLMOD_DOUBLE
        CHOLMOD_A
        CHOLMOD_L
        CHOLMOD_Lt
        CHOLMOD_P
        CHOLMOD_Pt
        CHOLMOD_OK
        CHOLMOD_NOT_POSDEF
        CHOLMOD_SIMPLICIAL
        CHOLMOD_AUTO
        CHOLMOD_SUPERNODAL

    ctypedef struct cholmod_common:
        int supernodal
        int final_ll
        int nmethods
        int postorder
        int status
        int print "print"
        int quick_return_if_not_posdef
        double fl
        double lnz

    ctypedef struct cholmod_sparse:
        size_t nrow
        size_t ncol
        size_t nzmax
        void* p
        void* i
        void* nz
        void* x
        void* z
        int stype
        int itype
        int xtype
        int dtype
        int sorted
        int packed

    ctypedef struct cholmod_dense:
        size_t nrow
        size_t ncol
        size_t nzmax
        size_t d
        void* x
        void* z
        int xtype
        int dtype

    ctypedef struct cholmod_factor:
        size_t n
        size_t minor
        void* Perm
        void* p
        void* i
        void* x
        size_t nsuper
        void* super "super"
        void* pi
        void* px
        int ordering
        int is_ll
        int is_super
        int xtype

    int cholmod_start(cholmod_common* c)
    int cholmod_finish(cholmod_common* c)
    cholmod_factor* cholmod_analyze(cholmod_sparse* A, cholmod_common* c)
    int cholmod_factorize(cholmod_sparse* A, cholmod_factor* L, cholmod_common* c)
    cholmod_dense* cholmod_solve(int sys, cholmod_factor* L, cholmod_dense* B, cholmod_common* c)
    int cholmod_free_factor(cholmod_factor** L, cholmod_common* c)
    int cholmod_free_dense(cholmod_dense** X, cholmod_common* c)
