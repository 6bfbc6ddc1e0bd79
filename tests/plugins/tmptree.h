/* tmptree.h - removing a test's temporary directory tree. */
#ifndef CPAR_TEST_TMPTREE_H
#define CPAR_TEST_TMPTREE_H

/* Remove `dir` and everything under it, without following symbolic links: 0, or -1 (nftw's). */
int tmptree_remove(const char *dir);

#endif
