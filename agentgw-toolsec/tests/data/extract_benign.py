"""Regenerates benign-mcp-tools.jsonl from git clones of the two source repositories.

usage: python3 extract_benign.py <modelcontextprotocol/servers clone> <github/github-mcp-server clone> > benign-mcp-tools.jsonl

Reads the HEAD commit of each clone (see README.md for the commits used).
"""
import json, re, subprocess, sys
R, GH = sys.argv[1], sys.argv[2]
def show(repo, path):
    return subprocess.run(['git','-C',repo,'show','HEAD:'+path],capture_output=True,text=True).stdout
def ls(repo):
    return subprocess.run(['git','-C',repo,'ls-tree','-r','HEAD','--name-only'],capture_output=True,text=True).stdout.split()
out=[]
# github-mcp-server toolsnaps: verbatim tool definitions
for p in sorted(ls(GH)):
    if '__toolsnaps__/' in p and p.endswith('.snap'):
        t=json.loads(show(GH,p))
        out.append({"source":"github/github-mcp-server:"+p,"tool":t})
STR=r'''(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`)'''
def lit(s):
    parts=re.findall(STR,s)
    r=''
    for x in parts:
        body=x[1:-1]
        body=body.replace('\\n','\n').replace("\\'","'").replace('\\"','"').replace('\\`','`')
        r+=body
    return r
def concat_after(block, key):
    m=re.search(r'\b'+key+r'\s*:\s*((?:'+STR+r'\s*\+?\s*)+)',block)
    return lit(m.group(1)) if m else None
def ts_tools(path):
    src=show(R,path)
    res=[]
    # registerTool("name", {...}) or name constant
    for m in re.finditer(r'registerTool\(\s*('+STR+r'|[A-Za-z_]+)\s*,',src):
        start=m.end()
        block=src[start:start+6000]
        nm=m.group(1)
        if nm[0] in '"\'`': name=nm[1:-1]
        elif nm=='name' and 'const config' in src:
            name=re.search(r'const name\s*=\s*"([^"]+)"',src).group(1); block=src[src.index('const config'):]; block=block[:block.index('};')]
        else:
            mm=re.search(r'const\s+'+nm+r'\s*=\s*('+STR+')',src); name=mm.group(1)[1:-1] if mm else nm
        # cut block at handler (first line starting with "  async" or ")" at col 0)
        end=re.search(r'\n\s*(async\s*\(|\)\s*;|[a-zA-Z]+Handler\s*\n)',block)
        block=block[:end.start()] if end else block
        desc=concat_after(block,'description')
        if desc is None or '${' in desc:
            continue
        title=concat_after(block,'title')
        props={}
        for pm in re.finditer(r'(\w+)\s*:\s*z[^\n]*?\.describe\(\s*((?:'+STR+r'\s*\+?\s*)+)\)',src if ('Schema' in block and 'const config' in src) else block):
            props[pm.group(1)]={"description":lit(pm.group(2))}
        t={"name":name,"description":desc,"inputSchema":{"type":"object","properties":props}}
        if title: t["title"]=title
        res.append(t)
    return res
tsfiles=['src/filesystem/index.ts','src/memory/index.ts','src/sequentialthinking/index.ts']+[p for p in ls(R) if p.startswith('src/everything/tools/') and p.endswith('.ts') and 'index' not in p]
for p in tsfiles:
    for t in ts_tools(p):
        out.append({"source":"modelcontextprotocol/servers:"+p,"tool":t})
# python servers: Tool(name=..., description=...)
for p in ['src/fetch/src/mcp_server_fetch/server.py','src/git/src/mcp_server_git/server.py','src/time/src/mcp_server_time/server.py']:
    src=show(R,p)
    for m in re.finditer(r'Tool\(\s*name\s*=\s*([^,]+),\s*description\s*=\s*((?:(?:"""[\s\S]*?"""|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')\s*)+)',src):
        desc=''.join(x.strip('"\'') for x in re.findall(r'"""[\s\S]*?"""|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'',m.group(2)))
        name=m.group(1).strip()
        em=re.search(re.escape(name.split('.')[-1])+r'\s*=\s*"([^"]+)"',src)
        if em: name=em.group(1)
        name=name.strip('"\'')
        out.append({"source":"modelcontextprotocol/servers:"+p,"tool":{"name":name,"description":desc.strip(),"inputSchema":{"type":"object"}}})
    # Field descriptions as parameters of the server's tools (attached to a pseudo-list)
FIX={"TimeTools.GET_CURRENT_TIME.value":"get_current_time","TimeTools.CONVERT_TIME.value":"convert_time"}
seen=set()
for o in out:
    t=o['tool']; t['name']=FIX.get(t['name'],t['name'])
    if t['name']=='git_create_branch' and t['description']=='List Git branches': t['name']='git_branch'
    if t['name']=='read_file' and 'modelcontext' in o['source']: t['inputSchema']['properties']={}
for o in out: print(json.dumps(o,ensure_ascii=False))
