/** Every page of a paged list, in order: `fetchPage` gets the previous page's `continue` (undefined for the first). */
export async function allPages<P extends { continue?: string | undefined }>(fetchPage: (token: string | undefined) => Promise<P>): Promise<P[]> {
  const pages: P[] = [];
  let token: string | undefined;
  do {
    const page = await fetchPage(token);
    pages.push(page);
    token = page.continue;
  } while (token);
  return pages;
}
