// The tab bar's icons: a few strokes each, drawn in the text colour.
const paths: Record<string, string> = {
  today: 'M9 12.5l2 2 4-4.5M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
  activities: 'M3 12h4l3-7 4 14 3-7h4',
  strava: 'M4 18l5-10 4 7 3-5 4 8',
  coach: 'M4 5h16v11H9l-5 4z',
  more: 'M5 12h.01M12 12h.01M19 12h.01',
};

export function Icon({ name }: { name: keyof typeof paths | string }) {
  return (
    <svg className="icon" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">
      <path d={paths[name] ?? ''} fill="none" stroke="currentColor" strokeWidth={name === 'more' ? 3.5 : 2} strokeLinecap="round" strokeLinejoin="round" />
    </svg>
  );
}
